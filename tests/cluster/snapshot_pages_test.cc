// A membership snapshot over NATS's max_payload, end to end: a real
// nats-server with a small max_payload, a live Socket.IO edge reporting to its
// journal, and brokers started after the sockets connected, which can only
// learn them from the edge's snapshot (in pages).
#include "cluster/snapshot_pages.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "broker/broker.h"
#include "bus/nats_bus.h"
#include "cluster/membership_journal.h"
#include "tests/bus/nats_server.h"
#include "tests/support/edge_test.h"
#include "tests/support/eventually.h"

namespace switchboard {
namespace {

using bus::testing::NatsServer;
using sio::Json;
using testing_support::BlockingClient;
using testing_support::EdgeTest;
using testing_support::Eventually;
using testing_support::JoinRoom;
using namespace std::chrono_literals;

constexpr uint64_t kMaxPayload = 16384;

std::unique_ptr<bus::Bus> Connect(const NatsServer& server) {
  bus::NatsBus::Options options;
  options.urls = {server.url()};
  auto bus = bus::NatsBus::Connect(options);
  EXPECT_TRUE(bus.ok()) << bus.status();
  return bus.ok() ? std::move(*bus) : nullptr;
}

std::unique_ptr<broker::Broker> StartBroker(bus::Bus& bus, const std::string& id) {
  broker::BrokerOptions options;
  options.broker_id = id;
  options.tick = 20ms;
  options.snapshot_timeout = 1s;
  auto broker = broker::Broker::Start(bus, options);
  EXPECT_TRUE(broker.ok()) << broker.status();
  return broker.ok() ? std::move(*broker) : nullptr;
}

// A socket's id, user, rooms and claims in one line.
std::string Describe(const v1::SocketInfo& s) {
  std::string rooms;
  for (const auto& room : s.rooms()) rooms += room + ",";
  return s.id() + " " + s.user_id() + " " + rooms + " " + s.claims();
}

// The sockets a broker lists, described.
std::set<std::string> Listed(broker::Broker& broker) {
  std::set<std::string> out;
  v1::ListSocketsRequest request;
  request.set_page_size(1000);
  auto page = broker.ListSockets(request);
  if (!page.ok()) return out;
  for (const auto& s : page->sockets()) out.insert(Describe(s));
  return out;
}

class SnapshotPagesTest : public EdgeTest {
 protected:
  SnapshotPagesTest() : EdgeTest(Unlimited(), testing_support::NamedEdge("e1")) {}
  static eio::Options Unlimited() {
    eio::Options options;
    options.handshake_rate.rate.per_second = 0;  // 150 clients from one address
    return options;
  }

  void SetUp() override {
    config_ = NatsServer::WriteConfig("max_payload: " + std::to_string(kMaxPayload) + "\n");
    ASSERT_FALSE(config_.empty());
    nats_ = std::make_unique<NatsServer>(std::vector<std::string>{"-c", config_});
    ASSERT_TRUE(nats_->Start());
    edge_bus_ = Connect(*nats_);
    ASSERT_NE(edge_bus_, nullptr);
    ASSERT_EQ(edge_bus_->max_payload(), kMaxPayload);
    journal_ = std::make_unique<cluster::MembershipJournal>(*edge_bus_, "e1");
    ASSERT_TRUE(journal_->ServeSnapshots().ok());
    server_.io().SetMembershipObserver(journal_.get());
    testing_support::UserFromAuth(server_.io().Of("/"));
    server_.Start();
  }

  void TearDown() override {
    EdgeTest::TearDown();
    if (!config_.empty()) unlink(config_.c_str());
  }

  std::string config_;
  std::unique_ptr<NatsServer> nats_;
  std::unique_ptr<bus::Bus> edge_bus_;
  std::unique_ptr<cluster::MembershipJournal> journal_;
};

// 150 sockets of some 500 bytes each: a snapshot of about 75 KiB against a
// 16 KiB max_payload. Two brokers started afterwards both list every socket
// with its user, rooms and claims; the edge served them in pages and held
// none once they were done.
TEST_F(SnapshotPagesTest, BrokersStartedLateLearnAnEdgeLargerThanOneMessage) {
  constexpr int kClients = 150;
  std::vector<std::unique_ptr<BlockingClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    Json auth = {{"user", "user-" + std::to_string(i % 40)},
                 {"note", std::string(400, 'a' + i % 26)}};
    clients.push_back(std::make_unique<BlockingClient>(server_.port(), false, "40" + auth.dump()));
    JoinRoom(*clients.back(), "room-" + std::to_string(i % 7));
  }
  ASSERT_TRUE(Eventually([&] { return journal_->last_seq() == 2 * kClients; }));
  const v1::Snapshot whole = journal_->BuildSnapshot();
  ASSERT_GT(whole.ByteSizeLong(), 4 * kMaxPayload);
  std::set<std::string> expected;
  for (const auto& s : whole.sockets()) expected.insert(Describe(s.socket()));
  ASSERT_EQ(expected.size(), static_cast<size_t>(kClients));

  auto bus_a = Connect(*nats_);
  auto bus_b = Connect(*nats_);
  ASSERT_NE(bus_a, nullptr);
  ASSERT_NE(bus_b, nullptr);
  auto broker_a = StartBroker(*bus_a, "ba");
  auto broker_b = StartBroker(*bus_b, "bb");
  ASSERT_NE(broker_a, nullptr);
  ASSERT_NE(broker_b, nullptr);
  // Its heartbeats make the brokers ask for the snapshot.
  EXPECT_TRUE(Eventually(
      [&] {
        (void)journal_->PublishHeartbeat();
        return Listed(*broker_a) == expected && Listed(*broker_b) == expected;
      },
      15s));
  EXPECT_EQ(Listed(*broker_a), expected);
  EXPECT_EQ(Listed(*broker_b), expected);
  EXPECT_GE(journal_->snapshots_served(), 2u);
  EXPECT_TRUE(Eventually([&] { return journal_->paged_snapshots_held() == 0; }));

  // The stream goes on from the snapshot's seq.
  clients.front()->Close();
  EXPECT_TRUE(Eventually([&] {
    return Listed(*broker_a).size() == kClients - 1 && Listed(*broker_b).size() == kClients - 1;
  }));
  broker_a.reset();
  broker_b.reset();
  for (auto& c : clients) c.reset();
}

// The split on its own: pages within the limit, in order, with the heartbeat
// in the first only.
TEST(SplitSnapshotTest, PagesStayWithinTheLimitAndKeepTheOrder) {
  v1::Snapshot snapshot;
  snapshot.set_edge_id("e9");
  snapshot.set_incarnation("inc");
  snapshot.set_seq(77);
  snapshot.mutable_heartbeat()->mutable_totals()->set_sockets(300);
  for (int i = 0; i < 300; ++i) {
    v1::SocketInfo* info = snapshot.add_sockets()->mutable_socket();
    info->set_id("e9." + std::to_string(1000 + i));
    info->set_claims(std::string(i % 50 * 10, 'c'));  // 0..490 bytes
  }
  const std::vector<std::string> pages = cluster::SplitSnapshot(snapshot, "inc-1", 4096);
  ASSERT_GT(pages.size(), 10u);
  int next = 0;
  for (size_t p = 0; p < pages.size(); ++p) {
    EXPECT_LE(pages[p].size(), 4096u) << "page " << p;
    v1::Snapshot page;
    ASSERT_TRUE(page.ParseFromString(pages[p]));
    EXPECT_EQ(page.edge_id(), "e9");
    EXPECT_EQ(page.seq(), 77u);
    EXPECT_EQ(page.snapshot_id(), "inc-1");
    EXPECT_EQ(page.page(), p);
    EXPECT_EQ(page.page_count(), pages.size());
    EXPECT_EQ(page.has_heartbeat(), p == 0);
    EXPECT_GT(page.sockets_size(), 0);
    for (const auto& s : page.sockets()) {
      EXPECT_EQ(s.socket().id(), snapshot.sockets(next++).socket().id());
    }
  }
  EXPECT_EQ(next, 300);

  // One socket larger than a page still goes, alone.
  snapshot.mutable_sockets(5)->mutable_socket()->set_claims(std::string(5000, 'x'));
  const std::vector<std::string> with_big = cluster::SplitSnapshot(snapshot, "inc-2", 4096);
  int found = 0;
  for (const std::string& bytes : with_big) {
    v1::Snapshot page;
    ASSERT_TRUE(page.ParseFromString(bytes));
    if (bytes.size() > 4096) {
      ASSERT_EQ(page.sockets_size(), 1);
      EXPECT_EQ(page.sockets(0).socket().id(), "e9.1005");
      ++found;
    }
  }
  EXPECT_EQ(found, 1);
}

// Kept a few, for a while; the last page served lets one go.
TEST(SnapshotPageCacheTest, KeepsAFewForAWhile) {
  using Clock = cluster::SnapshotPageCache::Clock;
  cluster::SnapshotPageCache cache;
  const Clock::time_point t0 = Clock::now();
  for (size_t i = 0; i < cluster::SnapshotPageCache::kMaxKept + 1; ++i) {
    cache.Keep("s" + std::to_string(i), {"p0", "p1"}, t0);
  }
  EXPECT_EQ(cache.size(), cluster::SnapshotPageCache::kMaxKept);
  EXPECT_FALSE(cache.Page("s0", 0, t0).has_value());  // pushed out by the newest
  EXPECT_EQ(cache.Page("s1", 0, t0), "p0");
  EXPECT_EQ(cache.Page("s1", 0, t0), "p0");  // again: still held
  EXPECT_FALSE(cache.Page("s1", 2, t0).has_value());
  EXPECT_EQ(cache.Page("s1", 1, t0), "p1");
  EXPECT_FALSE(cache.Page("s1", 0, t0).has_value());  // served whole: gone
  EXPECT_EQ(cache.Page("s2", 0, t0 + cluster::SnapshotPageCache::kKeepFor), "p0");
  EXPECT_FALSE(cache.Page("s2", 0, t0 + cluster::SnapshotPageCache::kKeepFor + 1s).has_value());
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace switchboard
