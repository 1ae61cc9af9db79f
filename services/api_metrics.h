#pragma once

// Metrics of the gRPC API and the broker (names: services/METRICS.md):
//
//   switchboard_grpc_calls_total{method,code}
//   switchboard_grpc_call_duration_seconds{method}  (histogram)
//   switchboard_membership_gaps_total, switchboard_resyncs_total,
//   switchboard_edges_expired_total, switchboard_edge_probes_total,
//   switchboard_watch_dropped_total,
//   switchboard_watch_acks_failed_total
//
//   ApiServerOptions options;
//   options.make_interceptors = GrpcMetricsInterceptors(metrics);

#include <grpcpp/support/server_interceptor.h>

#include <functional>
#include <memory>
#include <vector>

#include "broker/broker.h"
#include "services/metrics.h"

namespace switchboard::services {

// For ApiServerOptions::make_interceptors: one interceptor per call that
// counts it by method and status code and observes its duration. `metrics`
// must outlive the server.
std::function<std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>()>
GrpcMetricsInterceptors(Metrics& metrics);

// The broker's counters (gaps, resyncs, expired edges) at scrape time.
Metrics::CollectFn BrokerCollector(const broker::Broker& broker);

}  // namespace switchboard::services
