#pragma once

// The edge's client of the brokers' bus API (broker/bus_api.h,
// `sb.v1.api.<Method>`): the gRPC API's unary methods as bus requests, which
// one broker of the cluster (or the standalone process's own) answers.
//
// Errors: no broker subscribed ("no responders") → Unavailable naming the
// method; no answer in time → DeadlineExceeded; the broker's error → its
// code and message (as the gRPC API returns them); a bus that is down →
// Unavailable.
//
// Thread-safety: any method from any thread. Calls in flight do not use the
// client: it may be destroyed before they complete (the bus must not be).

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "bus/bus.h"
#include "google/protobuf/message.h"
#include "switchboard/v1/switchboard.pb.h"

namespace switchboard::cluster {

class BrokerApiClient {
 public:
  explicit BrokerApiClient(bus::Bus& bus,
                           std::chrono::milliseconds timeout = std::chrono::seconds(5))
      : bus_(bus), timeout_(timeout) {}

  template <typename Response>
  using Done = std::function<void(absl::StatusOr<Response>)>;

  // Sends `request` to `method` (a gRPC method name) and calls `done` once,
  // on `executor` (the bus default when empty), with the serialized response.
  // `extra_time` adds to the timeout (a Publish collecting acks).
  void Call(std::string_view method, const google::protobuf::Message& request,
            Done<std::string> done, bus::Executor executor = {},
            std::chrono::milliseconds extra_time = std::chrono::milliseconds(0)) const;

  // Publish waits ack_timeout_ms longer than the other methods.
  void Publish(const v1::PublishRequest& request, Done<v1::PublishResponse> done,
               bus::Executor executor = {}) const;
  void JoinRooms(const v1::JoinRoomsRequest& request, Done<v1::JoinRoomsResponse> done,
                 bus::Executor executor = {}) const {
    Typed("JoinRooms", request, std::move(done), std::move(executor));
  }
  void LeaveRooms(const v1::LeaveRoomsRequest& request, Done<v1::LeaveRoomsResponse> done,
                  bus::Executor executor = {}) const {
    Typed("LeaveRooms", request, std::move(done), std::move(executor));
  }
  void DisconnectSockets(const v1::DisconnectSocketsRequest& request,
                         Done<v1::DisconnectSocketsResponse> done,
                         bus::Executor executor = {}) const {
    Typed("DisconnectSockets", request, std::move(done), std::move(executor));
  }
  void ListSockets(const v1::ListSocketsRequest& request, Done<v1::ListSocketsResponse> done,
                   bus::Executor executor = {}) const {
    Typed("ListSockets", request, std::move(done), std::move(executor));
  }
  void GetStats(const v1::GetStatsRequest& request, Done<v1::GetStatsResponse> done,
                bus::Executor executor = {}) const {
    Typed("GetStats", request, std::move(done), std::move(executor));
  }
  void ListEdges(const v1::ListEdgesRequest& request, Done<v1::ListEdgesResponse> done,
                 bus::Executor executor = {}) const {
    Typed("ListEdges", request, std::move(done), std::move(executor));
  }

  // Any method, its response parsed as `Response`.
  template <typename Response>
  void Typed(std::string_view method, const google::protobuf::Message& request, Done<Response> done,
             bus::Executor executor = {},
             std::chrono::milliseconds extra_time = std::chrono::milliseconds(0)) const {
    Call(
        method, request,
        [done = std::move(done), name = std::string(Response::descriptor()->full_name())](
            absl::StatusOr<std::string> serialized) {
          if (!serialized.ok()) return done(serialized.status());
          Response response;
          if (!response.ParseFromString(*serialized)) return done(Unreadable(name));
          done(std::move(response));
        },
        std::move(executor), extra_time);
  }

 private:
  static absl::Status Unreadable(const std::string& message_name);

  bus::Bus& bus_;
  const std::chrono::milliseconds timeout_;
};

}  // namespace switchboard::cluster
