// The broker service of the `switchboard` binary (services/broker_process.h:
// roles `broker` and `standalone`) answers the bus API while it runs, and
// stops answering when it goes.
#include <gtest/gtest.h>

#include <future>
#include <memory>

#include "bus/inproc_bus.h"
#include "cluster/broker_api_client.h"
#include "services/broker_process.h"
#include "services/health.h"

namespace switchboard {
namespace {

using namespace std::chrono_literals;

absl::StatusOr<v1::GetStatsResponse> GetStats(const cluster::BrokerApiClient& client) {
  std::promise<absl::StatusOr<v1::GetStatsResponse>> promise;
  client.GetStats({}, [&](absl::StatusOr<v1::GetStatsResponse> r) { promise.set_value(r); });
  return promise.get_future().get();  // the client's timeout bounds it
}

TEST(BrokerServiceBusApiTest, AnswersWhileItRuns) {
  bus::InProcessBus bus;
  services::ProcessFlags flags;
  flags.broker_id = "b-service";
  flags.grpc_listen = "127.0.0.1:0";
  services::Health health(&bus, 0);
  auto service = services::BrokerService::Start(bus, flags, "test broker", nullptr, health);
  ASSERT_TRUE(service.ok()) << service.status();

  cluster::BrokerApiClient client(bus, 2s);
  auto stats = GetStats(client);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->broker_id(), "b-service");

  service->reset();
  EXPECT_EQ(GetStats(client).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace switchboard
