#include "cluster/poll_relay.h"

#include <spdlog/spdlog.h>

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/verb.hpp>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "bus/routing.h"
#include "edge/engineio/errors.h"
#include "edge/http/session.h"
#include "edge/ids.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::cluster {
namespace {

namespace beast_http = boost::beast::http;
using HttpPtr = std::shared_ptr<edge::HttpSession>;
constexpr auto kTimeoutMargin = std::chrono::seconds(5);

class RemoteExchange;

}  // namespace

struct PollRelay::Core : std::enable_shared_from_this<Core> {
  Core(bus::Bus& b, edge::Runtime& r, eio::Server& s, Options o)
      : bus(b),
        runtime(r),
        server(s),
        options(std::move(o)),
        id_prefix(absl::StrCat(options.edge_id, ".", bus::RandomNodeId(8), ".")),
        held(r.size()) {
    if (options.request_timeout.count() == 0) {
      options.request_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
          server.options().ping_interval + server.options().ping_timeout + kTimeoutMargin);
    }
  }

  bus::Bus& bus;
  edge::Runtime& runtime;
  eio::Server& server;
  Options options;
  const std::string id_prefix;  // "<edge-id>.<nonce>." of this process's request ids

  std::mutex mu;
  bool alive = true;  // guarded by mu
  // Requester side: the connections waiting for their owner's answer, by
  // request id (guarded by mu). Held here, not by the bus's pending request:
  // the relay releases them when it goes, while the I/O threads' contexts
  // still exist (the bus, which goes last, drops its requests after them).
  absl::flat_hash_map<std::string, HttpPtr> waiting;

  // Owner side, per shard (used there only): GETs held for another edge, by
  // request id, so that an abort finds them.
  std::vector<absl::flat_hash_map<std::string, std::weak_ptr<RemoteExchange>>> held;

  std::atomic<uint64_t> next_request{0};
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> served{0};
  LatencyHistogram latency;

  bool Alive() {
    std::lock_guard lock(mu);
    return alive;
  }
  void Post(size_t shard, std::function<void()> fn) {
    std::lock_guard lock(mu);
    if (alive) runtime.Post(shard, std::move(fn));
  }

  // ---- pass-through (the hook, on the connection's shard) ----
  void Forward(const HttpPtr& http, std::string_view owner, std::string_view sid);
  void Send(const HttpPtr& http, std::string_view owner, v1::PollRequest request);
  void Answer(const HttpPtr& http, const absl::StatusOr<bus::Message>& reply);

  // ---- owner (bus delivery thread, then the session's shard) ----
  void OnMessage(const bus::Message& message);
};

namespace {

// A request another edge passed on, as the polling transport sees it: its
// answer is a reply on the bus.
class RemoteExchange final : public eio::PollExchange,
                             public std::enable_shared_from_this<RemoteExchange> {
 public:
  RemoteExchange(std::shared_ptr<PollRelay::Core> core, size_t shard, std::string reply_to,
                 v1::PollRequest request)
      : core_(std::move(core)),
        shard_(shard),
        reply_to_(std::move(reply_to)),
        request_(std::move(request)) {}

  ~RemoteExchange() override {
    // Dropped unanswered (its session ended while the body "arrived"): the
    // client's connection is closed, as HttpSession::Close would.
    if (!answered_) Reply(v1::POLL_ANSWER_CLOSE);
  }

  void SendError(int status, int code, std::string_view message) override {
    v1::PollResponse response;
    response.set_answer(v1::POLL_ANSWER_ERROR);
    response.set_status(static_cast<uint32_t>(status));
    response.set_code(code);
    response.set_message(std::string(message));
    Reply(std::move(response));
  }
  void SendOk() override { Reply(v1::POLL_ANSWER_OK); }
  void SendPayload(std::string body) override {
    v1::PollResponse response;
    response.set_answer(v1::POLL_ANSWER_PAYLOAD);
    response.set_status(200);
    response.set_body(std::move(body));
    Reply(std::move(response));
  }
  void ReadBody(size_t limit,
                std::function<void(boost::system::error_code, std::string)> done) override {
    // The receiving edge read it (and stopped at its own limit).
    switch (request_.body_state()) {
      case v1::POLL_BODY_TOO_LARGE: return done(beast_http::error::body_limit, {});
      case v1::POLL_BODY_BROKEN: return done(beast_http::error::partial_message, {});
      default: break;
    }
    if (request_.body().size() > limit) return done(beast_http::error::body_limit, {});
    done({}, std::move(*request_.mutable_body()));
  }
  void WatchForAbort(std::function<void()> on_abort) override {
    on_abort_ = std::move(on_abort);
    core_->held[shard_][request_.request_id()] = weak_from_this();
    watched_ = true;
  }
  void Close() override { Reply(v1::POLL_ANSWER_CLOSE); }

  // On the shard: the client of this GET went away.
  void Abort() {
    if (answered_) return;
    answered_ = true;  // nobody to answer
    Unwatch();
    if (auto cb = std::move(on_abort_)) cb();
  }

 private:
  void Reply(v1::PollAnswer answer) {
    v1::PollResponse response;
    response.set_answer(answer);
    if (answer == v1::POLL_ANSWER_OK) {
      response.set_status(200);
      response.set_body("ok");
    }
    Reply(std::move(response));
  }
  void Reply(v1::PollResponse response) {
    if (answered_) return;
    answered_ = true;
    Unwatch();
    on_abort_ = nullptr;
    if (!core_->Alive()) return;
    absl::Status status = core_->bus.Publish(reply_to_, response.SerializeAsString());
    if (!status.ok()) {
      spdlog::debug("poll relay: answer for {} not sent: {}", request_.sid(), status.ToString());
    }
  }
  void Unwatch() {
    if (!watched_) return;
    watched_ = false;
    if (core_->runtime.context(shard_).get_executor().running_in_this_thread()) {
      core_->held[shard_].erase(request_.request_id());
    } else {
      core_->Post(shard_, [core = core_, shard = shard_, id = request_.request_id()] {
        core->held[shard].erase(id);
      });
    }
  }

  std::shared_ptr<PollRelay::Core> core_;
  size_t shard_;
  std::string reply_to_;
  v1::PollRequest request_;
  std::function<void()> on_abort_;
  bool answered_ = false;
  bool watched_ = false;
};

}  // namespace

// ---- pass-through -----------------------------------------------------------

void PollRelay::Core::Forward(const HttpPtr& http, std::string_view owner, std::string_view sid) {
  v1::PollRequest request;
  request.set_sid(std::string(sid));
  if (http->request().method() != beast_http::verb::post)
    return Send(http, owner, std::move(request));
  request.set_post(true);
  // Read here, with the same limit as the owner's: the owner only learns
  // the outcome.
  http->ReadBody(
      server.options().max_http_buffer_size,
      [self = shared_from_this(), http, owner = std::string(owner), request = std::move(request)](
          boost::system::error_code ec, std::string body) mutable {
        if (ec == beast_http::error::body_limit) {
          request.set_body_state(v1::POLL_BODY_TOO_LARGE);
        } else if (ec) {
          request.set_body_state(v1::POLL_BODY_BROKEN);
        } else {
          request.set_body(std::move(body));
        }
        self->Send(http, owner, std::move(request));
      });
}

void PollRelay::Core::Send(const HttpPtr& http, std::string_view owner, v1::PollRequest request) {
  const size_t shard = http->shard();
  const bool post = request.post();
  request.set_request_id(
      absl::StrCat(id_prefix, next_request.fetch_add(1, std::memory_order_relaxed)));
  sent.fetch_add(1, std::memory_order_relaxed);
  // Shared by the answer and the abort watch, both on the connection's shard.
  struct Exchange {
    bool done = false;
  };
  auto exchange = std::make_shared<Exchange>();
  const auto start = std::chrono::steady_clock::now();
  std::weak_ptr<Core> weak = weak_from_this();
  std::string subject = bus::PollSubject(owner);
  {
    std::lock_guard lock(mu);
    if (!alive) return;
    waiting[request.request_id()] = http;
  }
  bus.Request(
      subject, request.SerializeAsString(), options.request_timeout,
      [weak, id = request.request_id(), exchange, post, start](absl::StatusOr<bus::Message> reply) {
        auto self = weak.lock();
        if (!self) return;
        HttpPtr http;
        {
          std::lock_guard lock(self->mu);
          auto it = self->waiting.find(id);
          if (it == self->waiting.end()) return;  // the relay is gone
          http = std::move(it->second);
          self->waiting.erase(it);
        }
        if (exchange->done) return;
        exchange->done = true;
        if (post && reply.ok()) self->latency.Observe(std::chrono::steady_clock::now() - start);
        self->Answer(http, reply);
      },
      [weak, shard](std::function<void()> fn) {
        if (auto self = weak.lock()) self->Post(shard, std::move(fn));
      });
  if (post) return;
  // A held GET whose client leaves: the owner's long poll ends as a local
  // one would (the session closes with "transport close").
  http->WatchForAbort([weak, exchange, subject = std::move(subject), sid = request.sid(),
                       id = request.request_id()] {
    auto self = weak.lock();
    if (!self || exchange->done) return;
    exchange->done = true;
    v1::PollRequest abort;
    abort.set_sid(sid);
    abort.set_request_id(id);
    abort.set_abort(true);
    absl::Status status = self->bus.Publish(subject, abort.SerializeAsString());
    if (!status.ok())
      spdlog::debug("poll relay: abort for {} not sent: {}", sid, status.ToString());
  });
}

void PollRelay::Core::Answer(const HttpPtr& http, const absl::StatusOr<bus::Message>& reply) {
  v1::PollResponse response;
  if (!reply.ok() || !response.ParseFromString(reply->payload)) {
    // No owner (gone, unreachable): what a session that died here gives.
    if (!reply.ok() && !absl::IsNotFound(reply.status())) {
      spdlog::debug("poll relay: no answer: {}", reply.status().ToString());
    }
    return server.SendError(http, 400, eio::kUnknownSid, "Session ID unknown");
  }
  switch (response.answer()) {
    case v1::POLL_ANSWER_OK: return server.SendOk(http);
    case v1::POLL_ANSWER_PAYLOAD:
      return server.SendPayload(http, std::move(*response.mutable_body()));
    case v1::POLL_ANSWER_ERROR:
      return server.SendError(http, static_cast<int>(response.status()), response.code(),
                              response.message());
    default: return http->Close();
  }
}

// ---- owner ------------------------------------------------------------------

void PollRelay::Core::OnMessage(const bus::Message& message) {
  v1::PollRequest request;
  if (!request.ParseFromString(message.payload)) return;
  std::string_view sid = request.sid();
  std::string_view owner = edge::EdgeOfSocketId(sid);
  std::string local(owner.empty() ? std::string_view() : sid.substr(owner.size() + 1));
  int shard = edge::ShardOfId(local);
  if (request.abort()) {
    if (shard < 0 || static_cast<size_t>(shard) >= runtime.size()) return;
    // Posted behind its GET (same subject, same order): finds it held, or
    // already answered.
    return Post(static_cast<size_t>(shard),
                [self = shared_from_this(), shard, id = request.request_id()] {
                  auto& map = self->held[static_cast<size_t>(shard)];
                  auto it = map.find(id);
                  if (it == map.end()) return;
                  auto exchange = it->second.lock();
                  map.erase(it);
                  if (exchange) exchange->Abort();
                });
  }
  if (message.reply_to.empty()) return;
  served.fetch_add(1, std::memory_order_relaxed);
  const bool post = request.post();
  auto exchange = std::make_shared<RemoteExchange>(shared_from_this(),
                                                   shard < 0 ? 0 : static_cast<size_t>(shard),
                                                   message.reply_to, std::move(request));
  if (owner != options.edge_id) {
    return exchange->SendError(400, eio::kUnknownSid, "Session ID unknown");
  }
  server.ServePoll(local, post, std::move(exchange));
}

// ---- PollRelay --------------------------------------------------------------

absl::StatusOr<std::unique_ptr<PollRelay>> PollRelay::Start(bus::Bus& bus, edge::Runtime& runtime,
                                                            eio::Server& server, Options options) {
  if (!bus::ValidNodeId(options.edge_id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid edge id \"", options.edge_id, "\""));
  }
  std::string subject = bus::PollSubject(options.edge_id);
  auto core = std::make_shared<Core>(bus, runtime, server, std::move(options));
  std::unique_ptr<PollRelay> relay(new PollRelay(core));
  // Inline: parsing and posting to the session's shard is all it does, and
  // one delivery thread keeps a GET ahead of its abort.
  auto sub = bus.Subscribe(
      subject, [raw = core.get()](bus::Message message) { raw->OnMessage(message); }, {},
      bus::InlineExecutor);
  if (!sub.ok()) return sub.status();
  relay->sub_ = std::move(*sub);
  std::weak_ptr<Core> weak = core;
  server.OnForeignPoll(
      [weak, &server](const HttpPtr& http, std::string_view owner, std::string_view sid) {
        if (auto self = weak.lock()) return self->Forward(http, owner, sid);
        server.SendError(http, 400, eio::kUnknownSid, "Session ID unknown");
      });
  return relay;
}

PollRelay::PollRelay(std::shared_ptr<Core> core) : core_(std::move(core)) {}

PollRelay::~PollRelay() {
  if (sub_) sub_->Unsubscribe();  // waits for a running handler
  absl::flat_hash_map<std::string, HttpPtr> waiting;
  {
    std::lock_guard lock(core_->mu);
    core_->alive = false;
    waiting.swap(core_->waiting);
  }
  // Released now, while the I/O threads' contexts exist.
  waiting.clear();
}

uint64_t PollRelay::sent() const { return core_->sent.load(std::memory_order_relaxed); }
uint64_t PollRelay::served() const { return core_->served.load(std::memory_order_relaxed); }
const LatencyHistogram& PollRelay::latency() const { return core_->latency; }

}  // namespace switchboard::cluster
