#include "services/api_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include <chrono>
#include <string>

#include "services/grpc_code_name.h"

namespace switchboard::services {
namespace {

using grpc::experimental::InterceptionHookPoints;

struct GrpcFamilies {
  prometheus::Family<prometheus::Counter>& calls;
  prometheus::Family<prometheus::Histogram>& durations;
};

class MetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(GrpcFamilies& families, std::string method)
      : families_(families), method_(std::move(method)), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      const char* code = GrpcCodeName(methods->GetSendStatus().error_code());
      families_.calls.Add({{"method", method_}, {"code", code}}).Increment();
      families_.durations
          .Add({{"method", method_}},
               prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                       0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})
          .Observe(seconds);
    }
    methods->Proceed();
  }

 private:
  GrpcFamilies& families_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
};

class MetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(GrpcFamilies& families) : families_(families) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const char* method = info->method();
    return new MetricsInterceptor(families_, method == nullptr ? "" : method);
  }

 private:
  GrpcFamilies& families_;
};

}  // namespace

std::function<std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>()>
GrpcMetricsInterceptors(Metrics& metrics) {
  auto families = std::make_shared<GrpcFamilies>(GrpcFamilies{
      prometheus::BuildCounter()
          .Name("switchboard_grpc_calls_total")
          .Help("gRPC calls finished, by full method name and status code.")
          .Register(metrics.registry()),
      prometheus::BuildHistogram()
          .Name("switchboard_grpc_call_duration_seconds")
          .Help("gRPC call duration (to the status being sent), by method.")
          .Register(metrics.registry()),
  });
  return [families] {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
    out.push_back(std::make_unique<MetricsInterceptorFactory>(*families));
    return out;
  };
}

Metrics::CollectFn BrokerCollector(const broker::Broker& broker) {
  return [&broker](std::vector<prometheus::MetricFamily>& out) {
    const broker::Broker::Counters c = broker.counters();
    AppendCounter(out, "switchboard_membership_gaps_total",
                  "Membership events that arrived after a gap in an edge's stream.",
                  static_cast<double>(c.gaps));
    AppendCounter(out, "switchboard_resyncs_total",
                  "Snapshots asked of edges (new edge, gap, new incarnation).",
                  static_cast<double>(c.snapshot_requests));
    AppendCounter(out, "switchboard_edges_expired_total",
                  "Edges dropped from the index: silent for the edge timeout, or a probe found "
                  "their NATS connection closed.",
                  static_cast<double>(c.edges_expired));
    AppendCounter(out, "switchboard_edge_probes_total",
                  "Probes sent to edges whose heartbeats were late.",
                  static_cast<double>(c.edge_probes));
    AppendCounter(out, "switchboard_watch_dropped_total",
                  "WatchEvents events a watcher did not get (queue over its bound, stream ended, "
                  "queue group gone).",
                  static_cast<double>(c.watch_dropped));
    AppendCounter(out, "switchboard_watch_acks_failed_total",
                  "Client acks answered at once with an error because a queue group's watcher "
                  "dropped their event.",
                  static_cast<double>(c.watch_acks_failed));
    auto appends = CounterFamily(
        "switchboard_recovery_log_appends_total",
        "Publishes to namespaces with connection state recovery: stored in the namespace's "
        "JetStream log, sent on the core subjects because the namespace had no log stream "
        "(fallback), or refused because the log failed.");
    AddSample(appends, static_cast<double>(c.log_stored), {{"result", "stored"}});
    AddSample(appends, static_cast<double>(c.log_fallback), {{"result", "fallback"}});
    AddSample(appends, static_cast<double>(c.log_failed), {{"result", "failed"}});
    out.push_back(std::move(appends));
  };
}

}  // namespace switchboard::services
