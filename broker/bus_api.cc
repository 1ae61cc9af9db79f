#include "broker/bus_api.h"

#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "bus/routing.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::broker {

namespace pb = ::switchboard::v1;

// What a request's handler and its Publish completion share: the bus to
// reply on, until the BusApi is gone.
struct BusApi::State {
  State(bus::Bus& b, Broker& br) : bus(&b), broker(br) {}

  // Publishes `result` as an ApiReply on `reply_to`, unless stopped.
  void Reply(const std::string& reply_to, const absl::StatusOr<std::string>& result) {
    pb::ApiReply reply;
    if (result.ok()) {
      *reply.mutable_response() = *result;
    } else {
      reply.set_code(static_cast<int>(result.status().code()));
      reply.set_message(std::string(result.status().message()));
    }
    std::lock_guard lock(mu);
    if (bus == nullptr) return;
    absl::Status sent = bus->Publish(reply_to, reply.SerializeAsString());
    if (sent.code() == absl::StatusCode::kInvalidArgument && result.ok()) {
      // Over the bus's max_payload (a large page): say so rather than let the
      // caller time out.
      reply.Clear();
      reply.set_code(static_cast<int>(absl::StatusCode::kResourceExhausted));
      reply.set_message(absl::StrCat("the response (", result->size(),
                                     " bytes) does not fit in a bus message: ", sent.message()));
      (void)bus->Publish(reply_to, reply.SerializeAsString());
    }
    // Other failures (the bus is down): the caller times out.
  }

  std::mutex mu;
  bus::Bus* bus;  // guarded by mu; null once the BusApi is destroyed
  Broker& broker;
};

namespace {

template <typename Response>
absl::StatusOr<std::string> Serialized(const absl::StatusOr<Response>& response) {
  if (!response.ok()) return response.status();
  return response->SerializeAsString();
}

// Parses the request and calls a synchronous Broker method with it.
template <typename Request, typename Response>
absl::StatusOr<std::string> Call(Broker& broker,
                                 absl::StatusOr<Response> (Broker::*method)(const Request&),
                                 const std::string& method_name, const std::string& payload) {
  Request request;
  if (!request.ParseFromString(payload)) {
    return absl::InvalidArgumentError(absl::StrCat("the payload of ", method_name, " is not a ",
                                                   Request::descriptor()->full_name(), " message"));
  }
  return Serialized((broker.*method)(request));
}

}  // namespace

absl::StatusOr<std::unique_ptr<BusApi>> BusApi::Start(bus::Bus& bus, Broker& broker) {
  auto state = std::make_shared<State>(bus, broker);
  std::unique_ptr<BusApi> api(new BusApi(state));
  // The subscription ends (and its handler with it) before state_ is
  // released, so the handler may keep a plain pointer.
  State* s = state.get();
  auto handler = [s, weak = std::weak_ptr<State>(state)](bus::Message message) {
    if (message.reply_to.empty()) return;  // nobody to answer
    const std::string method = message.subject.substr(bus::kAllApi.size() - 1);
    Broker& b = s->broker;
    if (method == "Publish") {
      pb::PublishRequest request;
      if (!request.ParseFromString(message.payload)) {
        s->Reply(message.reply_to,
                 absl::InvalidArgumentError(
                     "the payload of Publish is not a switchboard.v1.PublishRequest message"));
        return;
      }
      // May complete after the BusApi is gone (acks, a recovery log): the
      // completion holds the state weakly, and a state whose BusApi is gone
      // no longer replies.
      b.Publish(request, [weak, reply_to = std::move(message.reply_to)](
                             absl::StatusOr<pb::PublishResponse> response) {
        if (auto state = weak.lock()) state->Reply(reply_to, Serialized(response));
      });
      return;
    }
    absl::StatusOr<std::string> result;
    if (method == "JoinRooms") {
      result = Call(b, &Broker::JoinRooms, method, message.payload);
    } else if (method == "LeaveRooms") {
      result = Call(b, &Broker::LeaveRooms, method, message.payload);
    } else if (method == "DisconnectSockets") {
      result = Call(b, &Broker::DisconnectSockets, method, message.payload);
    } else if (method == "ListSockets") {
      result = Call(b, &Broker::ListSockets, method, message.payload);
    } else if (method == "GetStats") {
      result = Call(b, &Broker::GetStats, method, message.payload);
    } else if (method == "ListEdges") {
      result = Call(b, &Broker::ListEdges, method, message.payload);
    } else {
      result = absl::UnimplementedError(
          absl::StrCat("the brokers' bus API has no method \"", method, "\""));
    }
    s->Reply(message.reply_to, result);
  };
  auto subscription = bus.Subscribe(bus::kAllApi, std::move(handler), bus::kBrokersQueueGroup);
  if (!subscription.ok()) return subscription.status();
  api->subscription_ = std::move(*subscription);
  return api;
}

BusApi::~BusApi() {
  if (subscription_) subscription_->Unsubscribe();
  std::lock_guard lock(state_->mu);
  state_->bus = nullptr;
}

}  // namespace switchboard::broker
