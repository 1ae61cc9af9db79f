#include "services/process.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/config.h"

namespace switchboard::services {

std::string UrlHost(const std::string& host) {
  return host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host;
}

absl::Status ListenError(absl::string_view flag, const absl::Status& status) {
  std::string message = absl::StrCat(flag, ": ", status.message());
  if (absl::IsUnavailable(status)) {  // not a malformed address: most often, the port is taken
    absl::StrAppend(&message, " (every process on a host needs its own port: pass ", flag,
                    " HOST:PORT; port 0 picks a free one)");
  }
  return absl::Status(status.code(), message);
}

absl::StatusOr<std::unique_ptr<bus::NatsBus>> ConnectNats(const std::string& url,
                                                          const std::string& name, bool no_echo,
                                                          uint64_t max_pending_bytes,
                                                          bool send_asap) {
  bus::NatsBus::Options options;
  options.send_asap = send_asap;
  options.urls = {url};
  options.name = name;
  options.no_echo = no_echo;
  options.max_pending_bytes = max_pending_bytes;
  absl::Status last;
  for (int attempt = 0; attempt < 30; ++attempt) {
    auto bus = bus::NatsBus::Connect(options);
    if (bus.ok()) return bus;
    last = bus.status();
    if (attempt == 0) spdlog::warn("NATS at {}: {} (retrying)", url, std::string(last.message()));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return last;
}

absl::StatusOr<std::unique_ptr<AdminServer>> StartAdmin(const ProcessFlags& flags, Metrics& metrics,
                                                        Health& health) {
  auto listen = ParseListen(flags.admin_listen);
  if (!listen.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--admin-listen: ", listen.status().message()));
  }
  metrics.AddCollector(HealthCollector(health));
  auto admin = AdminServer::Start(
      {.host = listen->first, .port = listen->second}, [&metrics] { return metrics.Serialize(); },
      [&health] { return health.Check(); });
  if (!admin.ok()) return ListenError("--admin-listen", admin.status());
  std::cout << "admin on " << UrlHost(listen->first) << ":" << (*admin)->port() << std::endl;
  return admin;
}

}  // namespace switchboard::services
