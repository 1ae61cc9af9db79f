// sbctl: the operator's command line for the Switchboard gRPC API (proto/switchboard/v1).
//
//   sbctl [--server HOST:PORT] [--token T] [--json] [TLS options] VERB ...
//
// TLS: --tls (system roots), --tls-ca FILE (trust these roots instead), --tls-cert FILE
// --tls-key FILE (client certificate, for a server with mutual TLS), --tls-server-name NAME (the
// name the server's certificate must carry, instead of the host of --server). Any of them turns
// TLS on.
//
// Exit status: 0 success; 1 the server answered with an error ("sbctl: CODE: message" on
// stderr); 2 bad usage (unknown option, --arg that is not JSON, ...).

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "services/version.h"
#include "switchboard/v1/switchboard.grpc.pb.h"
#include "services/grpc_code_name.h"

namespace {

namespace pb = switchboard::v1;

constexpr int kExitOk = 0;
constexpr int kExitRpcError = 1;
constexpr int kExitUsage = 2;

// Everything the command line says.
struct Options {
  std::string server = "127.0.0.1:50051";
  std::string token;
  bool json = false;
  bool tls = false;
  std::string ca_cert;
  std::string client_cert;
  std::string client_key;
  std::string server_name;
  double timeout_s = 10.0;

  // Shared by the verbs.
  std::string ns;
  std::vector<std::string> rooms;
  std::vector<std::string> socket_ids;
  std::vector<std::string> user_ids;

  // sockets / rooms / presence
  std::string room;
  std::string user;
  std::string prefix;

  // publish
  std::vector<std::string> except_rooms;
  std::vector<std::string> except_socket_ids;
  std::string event;
  std::vector<std::string> args;
  bool is_volatile = false;
  uint32_t ack_timeout_ms = 0;

  // join / leave
  std::vector<std::string> target_rooms;

  // disconnect
  bool close = false;

  // top
  uint32_t interval_ms = 1000;
  uint32_t iterations = 0;  // 0: until interrupted
};

int Fail(const grpc::Status& status) {
  std::cerr << "sbctl: " << switchboard::services::GrpcCodeName(status.error_code()) << ": " << status.error_message()
            << "\n";
  return kExitRpcError;
}

int UsageError(const std::string& message) {
  std::cerr << "sbctl: " << message << "\n";
  return kExitUsage;
}

void PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    // Cannot happen for our own messages; say so rather than print nothing.
    std::cerr << "sbctl: cannot print JSON: " << status.ToString() << "\n";
    return;
  }
  std::cout << out;
  if (out.empty() || out.back() != '\n') std::cout << "\n";
}

// A plain left-aligned table, two spaces between columns.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      if (width.size() < row.size()) width.resize(row.size(), 0);
      for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
      }
      out << line << "\n";
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string Join(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ",";
    out += item;
  }
  return out.empty() ? "-" : out;
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string TransportName(pb::Transport t) {
  switch (t) {
    case pb::TRANSPORT_POLLING: return "polling";
    case pb::TRANSPORT_WEBSOCKET: return "websocket";
    default: return "-";
  }
}

std::string Time(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "-";
  return google::protobuf::util::TimeUtil::ToString(ts);
}

std::string ArgText(const pb::Argument& arg) {
  if (arg.has_binary()) return "<" + std::to_string(arg.binary().size()) + " bytes>";
  return arg.json();
}

void PrintSockets(const google::protobuf::RepeatedPtrField<pb::SocketInfo>& sockets) {
  Table table({"ID", "EDGE", "USER", "NAMESPACE", "TRANSPORT", "ADDRESS", "CONNECTED", "ROOMS"});
  for (const auto& s : sockets) {
    table.Add({s.id(), OrDash(s.edge_id()), OrDash(s.user_id()), s.namespace_(),
               TransportName(s.transport()), OrDash(s.remote_address()), Time(s.connected_at()),
               Join(s.rooms())});
  }
  table.Print(std::cout);
}

std::vector<std::string> CountsRow(const std::string& name, const pb::Counts& c) {
  return {name,
          std::to_string(c.sockets()),
          std::to_string(c.users()),
          std::to_string(c.rooms()),
          std::to_string(c.messages_in()),
          std::to_string(c.messages_out())};
}

std::string Rate(double per_second) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", per_second);
  return buf;
}

class Client {
 public:
  // `ssl`: the TLS material (see TlsOptions), or null for plaintext.
  Client(const Options& opt, const grpc::SslCredentialsOptions* ssl) : opt_(opt) {
    std::shared_ptr<grpc::ChannelCredentials> creds =
        ssl != nullptr ? grpc::SslCredentials(*ssl) : grpc::InsecureChannelCredentials();
    grpc::ChannelArguments args;
    if (ssl != nullptr && !opt.server_name.empty()) args.SetSslTargetNameOverride(opt.server_name);
    stub_ = pb::Switchboard::NewStub(grpc::CreateCustomChannel(opt.server, creds, args));
  }

  // A context with the deadline and the bearer token. `extra_ms` lengthens the deadline (a
  // publish that collects acks waits that long on the server).
  std::unique_ptr<grpc::ClientContext> Context(uint32_t extra_ms = 0) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    auto deadline = std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(opt_.timeout_s * 1000)) +
                    std::chrono::milliseconds(extra_ms);
    ctx->set_deadline(deadline);
    if (!opt_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + opt_.token);
    return ctx;
  }

  pb::Switchboard::Stub& stub() { return *stub_; }

 private:
  const Options& opt_;
  std::unique_ptr<pb::Switchboard::Stub> stub_;
};

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  *out = std::string(std::istreambuf_iterator<char>(in), {});
  return !in.bad();
}

// The TLS material the options name; "" in `error` when fine.
grpc::SslCredentialsOptions TlsOptions(const Options& opt, std::string* error) {
  grpc::SslCredentialsOptions ssl;
  error->clear();
  if (opt.client_cert.empty() != opt.client_key.empty()) {
    *error = "--tls-cert and --tls-key go together";
    return ssl;
  }
  if (!opt.ca_cert.empty() && !ReadFile(opt.ca_cert, &ssl.pem_root_certs)) {
    *error = "cannot read " + opt.ca_cert;
  } else if (!opt.client_cert.empty() && !ReadFile(opt.client_cert, &ssl.pem_cert_chain)) {
    *error = "cannot read " + opt.client_cert;
  } else if (!opt.client_key.empty() && !ReadFile(opt.client_key, &ssl.pem_private_key)) {
    *error = "cannot read " + opt.client_key;
  }
  return ssl;
}

void FillSelector(const Options& opt, pb::Selector* sel) {
  sel->set_namespace_(opt.ns);
  for (const auto& r : opt.rooms) sel->add_rooms(r);
  for (const auto& s : opt.socket_ids) sel->add_socket_ids(s);
  for (const auto& u : opt.user_ids) sel->add_user_ids(u);
}

bool SelectorEmpty(const Options& opt) {
  return opt.rooms.empty() && opt.socket_ids.empty() && opt.user_ids.empty();
}

// ---- verbs ----

int Stats(Client& client, const Options& opt) {
  pb::GetStatsRequest req;
  pb::GetStatsResponse resp;
  auto ctx = client.Context();
  auto status = client.stub().GetStats(ctx.get(), req, &resp);
  if (!status.ok()) return Fail(status);
  if (opt.json) {
    PrintJson(resp);
    return kExitOk;
  }
  if (!resp.broker_id().empty()) std::cout << "broker " << resp.broker_id() << "\n\n";
  const std::vector<std::string> header = {"", "SOCKETS", "USERS", "ROOMS", "MSG_IN", "MSG_OUT"};
  Table totals(header);
  totals.Add(CountsRow("TOTAL", resp.totals()));
  totals.Print(std::cout);
  std::cout << "\n";
  Table edges({"EDGE", "SOCKETS", "USERS", "ROOMS", "MSG_IN", "MSG_OUT", "LAST_SEQ",
               "LAST_HEARTBEAT"});
  for (const auto& e : resp.edges()) {
    auto row = CountsRow(e.edge_id(), e.counts());
    row.push_back(std::to_string(e.last_seq()));
    row.push_back(Time(e.last_heartbeat()));
    edges.Add(std::move(row));
  }
  edges.Print(std::cout);
  std::cout << "\n";
  Table namespaces({"NAMESPACE", "SOCKETS", "USERS", "ROOMS", "MSG_IN", "MSG_OUT"});
  for (const auto& n : resp.namespaces()) namespaces.Add(CountsRow(n.namespace_(), n.counts()));
  namespaces.Print(std::cout);
  return kExitOk;
}

// "3d04h", "2h05m", "4m07s", "12s"; "-" when unknown or in the future.
std::string Uptime(const google::protobuf::Timestamp& started) {
  if (started.seconds() == 0 && started.nanos() == 0) return "-";
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const long long s = now - started.seconds();
  if (s < 0) return "-";
  char buf[32];
  if (s >= 86400) {
    std::snprintf(buf, sizeof(buf), "%lldd%02lldh", s / 86400, s % 86400 / 3600);
  } else if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", s / 3600, s % 3600 / 60);
  } else if (s >= 60) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%llds", s);
  }
  return buf;
}

std::string EdgeStateName(pb::EdgeState state) {
  switch (state) {
    case pb::EDGE_STATE_READY: return "ready";
    case pb::EDGE_STATE_DRAINING: return "draining";
    case pb::EDGE_STATE_LOST: return "lost";
    default: return "-";
  }
}

int Edges(Client& client, const Options& opt) {
  pb::ListEdgesRequest req;
  pb::ListEdgesResponse resp;
  auto ctx = client.Context();
  auto status = client.stub().ListEdges(ctx.get(), req, &resp);
  if (!status.ok()) return Fail(status);
  if (opt.json) {
    PrintJson(resp);
    return kExitOk;
  }
  Table table({"EDGE", "STATE", "VERSION", "UPTIME", "SOCKETS", "STARTED", "LAST_HEARTBEAT"});
  for (const auto& e : resp.edges()) {
    const bool lost = e.state() == pb::EDGE_STATE_LOST;
    table.Add({e.edge_id(), EdgeStateName(e.state()), OrDash(e.version()),
               lost ? "-" : Uptime(e.started_at()), std::to_string(e.sockets()),
               Time(e.started_at()), Time(e.last_heartbeat())});
  }
  table.Print(std::cout);
  return kExitOk;
}

// One frame of `sbctl top`: counts now, rates since the previous frame.
struct TopSample {
  std::chrono::steady_clock::time_point when;
  std::map<std::string, std::pair<uint64_t, uint64_t>> edges;       // messages in, out
  std::map<std::string, std::pair<uint64_t, uint64_t>> namespaces;  // messages in, out
};

int Top(Client& client, const Options& opt) {
  const bool tty = isatty(STDOUT_FILENO) != 0;
  std::optional<TopSample> previous;
  for (uint32_t frame = 0; opt.iterations == 0 || frame < opt.iterations; ++frame) {
    if (frame > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt.interval_ms));
    pb::GetStatsRequest req;
    pb::GetStatsResponse resp;
    auto ctx = client.Context();
    auto status = client.stub().GetStats(ctx.get(), req, &resp);
    // The first call must succeed; later failures are shown and the view goes on.
    if (!status.ok() && !previous) return Fail(status);
    std::ostringstream out;
    if (tty) out << "\x1b[H\x1b[2J";  // home, clear
    if (!status.ok()) {
      out << "sbctl top: " << switchboard::services::GrpcCodeName(status.error_code()) << ": " << status.error_message()
          << "\n";
      std::cout << out.str() << std::flush;
      continue;
    }
    TopSample now{std::chrono::steady_clock::now(), {}, {}};
    for (const auto& e : resp.edges()) {
      now.edges[e.edge_id()] = {e.counts().messages_in(), e.counts().messages_out()};
    }
    for (const auto& n : resp.namespaces()) {
      now.namespaces[n.namespace_()] = {n.counts().messages_in(), n.counts().messages_out()};
    }
    const double seconds =
        previous ? std::chrono::duration<double>(now.when - previous->when).count() : 0;
    // Rates in and out of `key` since the previous frame ("-" on the first, or when new).
    auto rates = [&](const std::map<std::string, std::pair<uint64_t, uint64_t>> TopSample::*table,
                     const std::string& key) -> std::pair<std::string, std::string> {
      if (!previous || seconds <= 0) return {"-", "-"};
      auto before = ((*previous).*table).find(key);
      if (before == ((*previous).*table).end()) return {"-", "-"};
      const auto& [in, sent] = (now.*table).at(key);
      // A restarted edge's counters start again from zero.
      auto per_second = [&](uint64_t a, uint64_t b) {
        return Rate(a >= b ? static_cast<double>(a - b) / seconds : 0);
      };
      return {per_second(in, before->second.first), per_second(sent, before->second.second)};
    };
    if (opt.json) {
      nlohmann::json frame_json = {{"broker_id", resp.broker_id()},
                                   {"sockets", resp.totals().sockets()},
                                   {"edges", nlohmann::json::array()},
                                   {"namespaces", nlohmann::json::array()}};
      auto rate_json = [](const std::string& r) -> nlohmann::json {
        return r == "-" ? nlohmann::json(nullptr) : nlohmann::json(std::stod(r));
      };
      for (const auto& e : resp.edges()) {
        auto [in, sent] = rates(&TopSample::edges, e.edge_id());
        frame_json["edges"].push_back({{"edge_id", e.edge_id()},
                                       {"sockets", e.counts().sockets()},
                                       {"in_per_second", rate_json(in)},
                                       {"out_per_second", rate_json(sent)}});
      }
      for (const auto& n : resp.namespaces()) {
        auto [in, sent] = rates(&TopSample::namespaces, n.namespace_());
        frame_json["namespaces"].push_back({{"namespace", n.namespace_()},
                                            {"sockets", n.counts().sockets()},
                                            {"in_per_second", rate_json(in)},
                                            {"out_per_second", rate_json(sent)}});
      }
      std::cout << frame_json.dump() << std::endl;
      previous = std::move(now);
      continue;
    }
    out << "switchboard top: broker " << resp.broker_id() << ", "
        << resp.totals().sockets() << " connection(s), " << resp.edges_size()
        << " edge(s), every " << Rate(opt.interval_ms / 1000.0) << " s\n\n";
    Table edges({"EDGE", "CONNECTIONS", "IN/S", "OUT/S"});
    for (const auto& e : resp.edges()) {
      auto [in, sent] = rates(&TopSample::edges, e.edge_id());
      edges.Add({e.edge_id(), std::to_string(e.counts().sockets()), in, sent});
    }
    edges.Print(out);
    out << "\n";
    Table namespaces({"NAMESPACE", "CONNECTIONS", "IN/S", "OUT/S"});
    for (const auto& n : resp.namespaces()) {
      auto [in, sent] = rates(&TopSample::namespaces, n.namespace_());
      namespaces.Add({n.namespace_(), std::to_string(n.counts().sockets()), in, sent});
    }
    namespaces.Print(out);
    if (!tty) out << "\n";
    std::cout << out.str() << std::flush;
    previous = std::move(now);
  }
  return kExitOk;
}

constexpr uint32_t kPageSize = 500;

int Sockets(Client& client, const Options& opt) {
  pb::ListSocketsRequest req;
  req.set_namespace_(opt.ns);
  req.set_room(opt.room);
  req.set_user_id(opt.user);
  req.set_page_size(kPageSize);
  pb::ListSocketsResponse all;
  do {
    pb::ListSocketsResponse page;
    auto ctx = client.Context();
    auto status = client.stub().ListSockets(ctx.get(), req, &page);
    if (!status.ok()) return Fail(status);
    for (auto& s : *page.mutable_sockets()) *all.add_sockets() = std::move(s);
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  if (opt.json) {
    PrintJson(all);
  } else {
    PrintSockets(all.sockets());
  }
  return kExitOk;
}

int Rooms(Client& client, const Options& opt) {
  pb::ListRoomsRequest req;
  req.set_namespace_(opt.ns);
  req.set_prefix(opt.prefix);
  req.set_page_size(kPageSize);
  pb::ListRoomsResponse all;
  do {
    pb::ListRoomsResponse page;
    auto ctx = client.Context();
    auto status = client.stub().ListRooms(ctx.get(), req, &page);
    if (!status.ok()) return Fail(status);
    for (auto& r : *page.mutable_rooms()) *all.add_rooms() = std::move(r);
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  if (opt.json) {
    PrintJson(all);
    return kExitOk;
  }
  Table table({"NAMESPACE", "ROOM", "MEMBERS"});
  for (const auto& r : all.rooms()) {
    table.Add({r.namespace_(), r.name(), std::to_string(r.members())});
  }
  table.Print(std::cout);
  return kExitOk;
}

int Presence(Client& client, const Options& opt) {
  pb::GetPresenceRequest req;
  req.set_user_id(opt.user);
  req.set_namespace_(opt.ns);
  pb::GetPresenceResponse resp;
  auto ctx = client.Context();
  auto status = client.stub().GetPresence(ctx.get(), req, &resp);
  if (!status.ok()) return Fail(status);
  if (opt.json) {
    PrintJson(resp);
    return kExitOk;
  }
  if (!resp.online()) {
    std::cout << "user " << opt.user << ": offline\n";
    return kExitOk;
  }
  std::cout << "user " << opt.user << ": online, " << resp.sockets_size()
            << (resp.sockets_size() == 1 ? " socket\n" : " sockets\n");
  PrintSockets(resp.sockets());
  return kExitOk;
}

int Publish(Client& client, const Options& opt) {
  pb::PublishRequest req;
  auto* target = req.mutable_target();
  target->set_namespace_(opt.ns);
  for (const auto& r : opt.rooms) target->add_rooms(r);
  for (const auto& s : opt.socket_ids) target->add_socket_ids(s);
  for (const auto& u : opt.user_ids) target->add_user_ids(u);
  for (const auto& r : opt.except_rooms) target->add_except_rooms(r);
  for (const auto& s : opt.except_socket_ids) target->add_except_socket_ids(s);
  req.set_event(opt.event);
  for (size_t i = 0; i < opt.args.size(); ++i) {
    if (!nlohmann::json::accept(opt.args[i])) {
      return UsageError("--arg #" + std::to_string(i + 1) + " is not valid JSON: " + opt.args[i] +
                        " (a string needs quotes: --arg '\"text\"')");
    }
    req.add_args()->set_json(opt.args[i]);
  }
  req.set_volatile_(opt.is_volatile);
  req.set_ack_timeout_ms(opt.ack_timeout_ms);

  pb::PublishResponse resp;
  auto ctx = client.Context(opt.ack_timeout_ms);
  auto status = client.stub().Publish(ctx.get(), req, &resp);
  if (!status.ok()) return Fail(status);
  if (opt.json) {
    PrintJson(resp);
    return kExitOk;
  }
  std::cout << "recipients: " << resp.recipients() << "\n";
  if (opt.ack_timeout_ms > 0) {
    Table table({"SOCKET", "ACK"});
    for (const auto& ack : resp.acks()) {
      std::string text;
      if (!ack.error().empty()) {
        text = "error: " + ack.error();
      } else {
        text = "[";
        for (int i = 0; i < ack.args_size(); ++i) {
          if (i > 0) text += ",";
          text += ArgText(ack.args(i));
        }
        text += "]";
      }
      table.Add({ack.socket_id(), text});
    }
    table.Print(std::cout);
  }
  return kExitOk;
}

int JoinOrLeave(Client& client, const Options& opt, bool join) {
  if (SelectorEmpty(opt)) {
    return UsageError(std::string(join ? "join" : "leave") +
                      ": give at least one of --room, --socket, --user");
  }
  uint64_t matched = 0;
  grpc::Status status;
  auto ctx = client.Context();
  if (join) {
    pb::JoinRoomsRequest req;
    FillSelector(opt, req.mutable_selector());
    for (const auto& r : opt.target_rooms) req.add_rooms(r);
    pb::JoinRoomsResponse resp;
    status = client.stub().JoinRooms(ctx.get(), req, &resp);
    if (status.ok() && opt.json) PrintJson(resp);
    matched = resp.matched_sockets();
  } else {
    pb::LeaveRoomsRequest req;
    FillSelector(opt, req.mutable_selector());
    for (const auto& r : opt.target_rooms) req.add_rooms(r);
    pb::LeaveRoomsResponse resp;
    status = client.stub().LeaveRooms(ctx.get(), req, &resp);
    if (status.ok() && opt.json) PrintJson(resp);
    matched = resp.matched_sockets();
  }
  if (!status.ok()) return Fail(status);
  if (!opt.json) std::cout << "matched sockets: " << matched << "\n";
  return kExitOk;
}

int Disconnect(Client& client, const Options& opt) {
  if (SelectorEmpty(opt)) {
    return UsageError("disconnect: give at least one of --room, --socket, --user");
  }
  pb::DisconnectSocketsRequest req;
  FillSelector(opt, req.mutable_selector());
  req.set_close(opt.close);
  pb::DisconnectSocketsResponse resp;
  auto ctx = client.Context();
  auto status = client.stub().DisconnectSockets(ctx.get(), req, &resp);
  if (!status.ok()) return Fail(status);
  if (opt.json) {
    PrintJson(resp);
  } else {
    std::cout << "matched sockets: " << resp.matched_sockets() << "\n";
  }
  return kExitOk;
}

void AddSelectorOptions(CLI::App* cmd, Options& opt, const std::string& what) {
  cmd->add_option("--ns", opt.ns, "Namespace (default \"/\")");
  cmd->add_option("--room", opt.rooms, what + " sockets in this room (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--socket", opt.socket_ids, what + " this socket id (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--user", opt.user_ids, what + " every socket of this user (repeatable)")
      ->allow_extra_args(false);
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (const char* env = std::getenv("SWITCHBOARD_TOKEN")) opt.token = env;

  CLI::App app{"sbctl: operate a Switchboard cluster through its gRPC API"};
  app.name("sbctl");
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the verb
  app.add_option("--server", opt.server, "Broker gRPC address HOST:PORT")->capture_default_str();
  app.add_option("--token", opt.token,
                 "Bearer token (default: $SWITCHBOARD_TOKEN), sent as 'authorization: Bearer T'");
  app.add_flag("--json", opt.json, "Print proto JSON instead of tables");
  app.add_flag("--tls", opt.tls, "Use TLS (system roots unless --tls-ca)");
  app.add_option("--tls-ca,--ca-cert", opt.ca_cert,
                 "PEM file of the root certificates to trust (implies --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", opt.client_cert,
                 "PEM client certificate chain, for mutual TLS (with --tls-key; implies --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", opt.client_key, "PEM private key of --tls-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-server-name", opt.server_name,
                 "Name the server's certificate must carry, instead of the host of --server "
                 "(implies --tls)");
  app.add_option("--timeout", opt.timeout_s, "Call deadline in seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);

  app.set_version_flag("--version", std::string(switchboard::services::Version()));

  auto* stats = app.add_subcommand("stats", "Totals, per edge, per namespace");

  auto* edges = app.add_subcommand(
      "edges", "The edges: state (ready, draining, lost), version, uptime, sockets");

  auto* top = app.add_subcommand(
      "top", "Live view: connections and message rates in/out, per edge and per namespace");
  top->add_option("--interval-ms", opt.interval_ms, "Refresh period in milliseconds")
      ->capture_default_str()
      ->check(CLI::Range(10u, 3600000u));
  top->add_option("--iterations", opt.iterations, "Stop after this many frames (0: never)")
      ->capture_default_str();

  auto* sockets = app.add_subcommand("sockets", "List connected sockets");
  sockets->add_option("--ns", opt.ns, "Only this namespace (default: all)");
  sockets->add_option("--room", opt.room, "Only members of this room (needs --ns)");
  sockets->add_option("--user", opt.user, "Only sockets of this user");

  auto* rooms = app.add_subcommand("rooms", "List rooms with member counts");
  rooms->add_option("--ns", opt.ns, "Only this namespace (default: all)");
  rooms->add_option("--prefix", opt.prefix, "Only rooms whose name starts with this");

  auto* presence = app.add_subcommand("presence", "Is a user online, on which sockets");
  presence->add_option("USER", opt.user, "User id")->required();
  presence->add_option("--ns", opt.ns, "Only this namespace (default: all)");

  auto* publish = app.add_subcommand("publish", "Push an event to sockets");
  AddSelectorOptions(publish, opt, "Target");
  publish->add_option("--except", opt.except_rooms, "Skip sockets in this room (repeatable)")
      ->allow_extra_args(false);
  publish->add_option("--except-socket", opt.except_socket_ids,
                      "Skip this socket id (repeatable)")
      ->allow_extra_args(false);
  publish->add_option("--event", opt.event, "Event name")->required();
  publish->add_option("--arg", opt.args, "Event argument as JSON (repeatable, in order)")
      ->allow_extra_args(false);
  publish->add_flag("--volatile", opt.is_volatile, "May be dropped for a slow client");
  publish->add_option("--ack-timeout", opt.ack_timeout_ms,
                      "Collect acks, waiting up to MS milliseconds");

  auto* join = app.add_subcommand("join", "Make the selected sockets join rooms");
  AddSelectorOptions(join, opt, "Select");
  join->add_option("ROOM", opt.target_rooms, "Rooms to join")->required();

  auto* leave = app.add_subcommand("leave", "Make the selected sockets leave rooms");
  AddSelectorOptions(leave, opt, "Select");
  leave->add_option("ROOM", opt.target_rooms, "Rooms to leave")->required();

  auto* disconnect = app.add_subcommand("disconnect", "Disconnect the selected sockets");
  AddSelectorOptions(disconnect, opt, "Select");
  disconnect->add_flag("--close", opt.close,
                       "Close the whole connection (every namespace), not just this namespace");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  const bool tls = opt.tls || !opt.ca_cert.empty() || !opt.client_cert.empty() ||
                   !opt.client_key.empty() || !opt.server_name.empty();
  std::string tls_error;
  grpc::SslCredentialsOptions ssl = TlsOptions(opt, &tls_error);
  if (!tls_error.empty()) return UsageError(tls_error);
  Client client(opt, tls ? &ssl : nullptr);
  if (stats->parsed()) return Stats(client, opt);
  if (edges->parsed()) return Edges(client, opt);
  if (top->parsed()) return Top(client, opt);
  if (sockets->parsed()) return Sockets(client, opt);
  if (rooms->parsed()) return Rooms(client, opt);
  if (presence->parsed()) return Presence(client, opt);
  if (publish->parsed()) return Publish(client, opt);
  if (join->parsed()) return JoinOrLeave(client, opt, true);
  if (leave->parsed()) return JoinOrLeave(client, opt, false);
  if (disconnect->parsed()) return Disconnect(client, opt);
  return UsageError("no verb");
}
