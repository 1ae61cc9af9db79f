#include "services/broker_process.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "bus/routing.h"
#include "services/api_metrics.h"
#include "services/broker_event_log.h"
#include "services/config.h"

namespace switchboard::services {

absl::StatusOr<std::unique_ptr<BrokerService>> BrokerService::Start(
    bus::Bus& bus, const ProcessFlags& flags, const std::string& label, Metrics* metrics,
    Health& health, std::function<bool()> deliveries_behind, RecoveryLog recovery) {
  auto listen = ParseListen(flags.grpc_listen);
  if (!listen.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--grpc-listen: ", listen.status().message()));
  }
  broker::BrokerOptions options;
  options.broker_id = flags.broker_id;
  options.edge_timeout = std::chrono::milliseconds(flags.edge_timeout_ms);
  std::unique_ptr<BrokerService> service(new BrokerService(health));
  service->event_log_ = std::move(recovery.log);
  options.event_log = service->event_log_.get();
  if (options.event_log == nullptr && recovery.warn_without_log) {
    auto warned = std::make_shared<std::atomic<bool>>(false);
    options.on_recovery_announced = [warned](const std::string& nsp) {
      if (warned->exchange(true)) return;
      spdlog::warn(
          "an edge runs connection state recovery for {} on JetStream, but this broker's NATS "
          "server has no JetStream: its publishes to recovery namespaces go on the core subjects "
          "(delivered live, without offsets, not replayed on recovery)",
          nsp);
    };
  }
  auto started = broker::Broker::Start(bus, options);
  if (!started.ok()) return started.status();
  service->broker_ = std::move(*started);
  auto bus_api = broker::BusApi::Start(bus, *service->broker_);
  if (!bus_api.ok()) return bus_api.status();
  service->bus_api_ = std::move(*bus_api);
  ApiServerOptions api_options;
  api_options.host = listen->first;
  api_options.port = listen->second;
  api_options.security = flags.api_security;
  api_options.max_watch_queue_bytes = flags.watch_queue_bytes;
  api_options.deliveries_behind = std::move(deliveries_behind);
  if (metrics != nullptr) api_options.make_interceptors = GrpcMetricsInterceptors(*metrics);
  auto api = ApiServer::Start(*service->broker_, api_options);
  if (!api.ok()) return ListenError("--grpc-listen", api.status());
  service->api_ = std::move(*api);
  if (metrics != nullptr) metrics->AddCollector(BrokerCollector(*service->broker_));
  std::cout << label << " serving gRPC on " << UrlHost(listen->first) << ":"
            << service->api_->port() << std::endl;
  ApiServer* served = service->api_.get();
  health.Watch([served](bool ready) { served->SetServing(ready); });
  return service;
}

BrokerService::~BrokerService() {
  health_.StopWatch();  // its listener calls api_
  if (api_) api_->Shutdown(std::chrono::milliseconds(1000));
}

void BrokerService::Drain(std::chrono::milliseconds grace) {
  health_.StopWatch();
  api_->Shutdown(grace);
}

sigset_t BrokerProcess::BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

BrokerProcess::BrokerProcess(ProcessFlags flags) : flags_(std::move(flags)) {}

absl::StatusOr<std::unique_ptr<BrokerProcess>> BrokerProcess::Start(ProcessFlags flags) {
  if (flags.broker_id.empty()) flags.broker_id = absl::StrCat("b", bus::RandomNodeId(10));
  std::unique_ptr<BrokerProcess> process(new BrokerProcess(std::move(flags)));
  const ProcessFlags& f = process->flags_;
  auto nats = ConnectNats(f.nats_url, absl::StrCat("switchboard-broker-", f.broker_id),
                          /*no_echo=*/false, f.bus_max_pending_mb << 20);
  if (!nats.ok()) {
    return absl::Status(nats.status().code(), absl::StrCat("cannot connect to NATS at ", f.nats_url,
                                                           ": ", nats.status().message()));
  }
  process->bus_ = std::move(*nats);
  process->metrics_.AddCollector(BusCollector(*process->bus_));
  process->health_ = std::make_unique<Health>(process->bus_.get(), f.memory_limit_mb << 20);
  RecoveryLog recovery;
  if (auto log = BrokerEventLog::Create(*process->bus_); log.ok()) {
    recovery.log = std::move(*log);
  } else {
    // FailedPrecondition: no JetStream; otherwise it could not be asked. Either
    // way recoverable publishes take the core subjects.
    recovery.warn_without_log = true;
    spdlog::info("no JetStream for recovery logs ({}): publishes go on the core subjects",
                 log.status().ToString());
  }
  auto service =
      BrokerService::Start(*process->bus_, f, absl::StrCat("switchboard broker ", f.broker_id),
                           &process->metrics_, *process->health_, nullptr, std::move(recovery));
  if (!service.ok()) {
    return absl::Status(service.status().code(),
                        absl::StrCat("broker: ", service.status().message()));
  }
  process->service_ = std::move(*service);
  auto admin = StartAdmin(f, process->metrics_, *process->health_);
  if (!admin.ok()) return admin.status();
  process->admin_ = std::move(*admin);
  return process;
}

void BrokerProcess::Run(const sigset_t& stop_signals) {
  int signo = 0;
  sigwait(&stop_signals, &signo);
  spdlog::info("signal {}: draining (in-flight gRPC calls have {} ms)", signo,
               flags_.drain_grace_ms);
  health_->SetDraining();
  service_->Drain(std::chrono::milliseconds(flags_.drain_grace_ms));
}

}  // namespace switchboard::services
