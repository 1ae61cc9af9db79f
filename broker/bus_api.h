#pragma once

// The brokers' bus API (proto/SUBJECTS.md, `sb.v1.api.<Method>`): the gRPC
// API's unary methods over bus request/reply, for edges (the Admin UI) that
// have the bus but no gRPC address. A request's payload is the method's
// serialized gRPC request message; the reply is an ApiReply (bus.proto) with
// the status and the serialized response. Every broker subscribes in the
// queue group `sb-brokers`, so one of them answers each request, by calling
// the same Broker methods as services/api_server.cc.
//
// Served: Publish, JoinRooms, LeaveRooms, DisconnectSockets, ListSockets,
// GetStats, ListEdges. Another method: UNIMPLEMENTED; a payload that does not
// parse: INVALID_ARGUMENT; a request without a reply subject: ignored.

#include <memory>

#include "absl/status/statusor.h"
#include "broker/broker.h"
#include "bus/bus.h"

namespace switchboard::broker {

class BusApi {
 public:
  // Subscribes to `sb.v1.api.>` in the queue group `sb-brokers`. The bus and
  // the broker must outlive the BusApi.
  static absl::StatusOr<std::unique_ptr<BusApi>> Start(bus::Bus& bus, Broker& broker);
  // Unsubscribes. A Publish that completes later is not answered (its caller
  // times out).
  ~BusApi();
  BusApi(const BusApi&) = delete;
  BusApi& operator=(const BusApi&) = delete;

 private:
  struct State;
  explicit BusApi(std::shared_ptr<State> state) : state_(std::move(state)) {}

  std::shared_ptr<State> state_;  // shared with Publish completions
  bus::SubscriptionPtr subscription_;
};

}  // namespace switchboard::broker
