// The addressing rules of bus/routing.h (proto/SUBJECTS.md): the one target ->
// subjects rule shared by the broker and the edges' relays, and the socket-id
// format (edge/ids.h) they route by.
#include "bus/routing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bus/subject.h"

namespace switchboard::bus {
namespace {

using Names = std::vector<std::string>;

TEST(RoutingTest, TargetSubjectsNamesEachRoomUserAndSocketOnce) {
  const std::string a = MakeSocketId("e1", "a");
  const std::string b = MakeSocketId("e2", "b");
  std::vector<std::string> subjects =
      TargetSubjects("/chat", Names{"r1", "r2", "r1"}, Names{a, b, a}, Names{"u1", "u1"});
  std::vector<std::string> expected = {RoomSubject("/chat", "r1"), RoomSubject("/chat", "r2"),
                                       UserSubject("/chat", "u1"), SocketSubject(a),
                                       SocketSubject(b)};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(subjects, expected);
}

TEST(RoutingTest, ARoomNamedBySocketIdAlsoGoesToThatSocket) {
  const std::string a = MakeSocketId("e1", "a");
  std::vector<std::string> expected = {RoomSubject("/", a), SocketSubject(a)};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(TargetSubjects("/", Names{a}, Names{}, Names{}), expected);
}

TEST(RoutingTest, ASocketSubjectNamesItsEdgeAndIsMatchedByTheEdgesPattern) {
  const std::string a = MakeSocketId("e1", "abc");
  EXPECT_EQ(SocketSubject(a), "sb.v1.sock.e1.abc");
  EXPECT_TRUE(SubjectMatches(SocketPattern("e1"), SocketSubject(a)));
  EXPECT_FALSE(SubjectMatches(SocketPattern("e2"), SocketSubject(a)));
  EXPECT_EQ(SocketSubject("no-edge"), "");
}

TEST(RoutingTest, NothingNamedIsTheWholeNamespace) {
  EXPECT_EQ(TargetSubjects("/", Names{}, Names{}, Names{}), Names{NamespaceSubject("/")});
  EXPECT_EQ(TargetSubjects("/x", Names{}, Names{}, Names{}), Names{NamespaceSubject("/x")});
}

TEST(RoutingTest, SocketIdsNameTheirEdge) {
  EXPECT_EQ(MakeSocketId("edge-1", "abc"), "edge-1.abc");
  EXPECT_EQ(EdgeOfSocketId(MakeSocketId("edge-1", "abc")), "edge-1");
  for (std::string bad : {"abc", ".abc", "e1.", "e1.a.b", "e 1.abc", ""}) {
    EXPECT_EQ(EdgeOfSocketId(bad), "") << bad;
  }
  EXPECT_TRUE(ValidNodeId(RandomNodeId()));
  EXPECT_FALSE(ValidNodeId(std::string(65, 'a')));
}

TEST(RoutingTest, AckRefsNameTheirEdge) {
  EXPECT_EQ(EdgeOfAckRef(AckRefPrefix("e1", "n0nce") + "12"), "e1");
  for (std::string bad : {"e1.n.", "e1..1", "e1.n.1.2", "e1.n.x", "e 1.n.1", "e1.n", ""}) {
    EXPECT_EQ(EdgeOfAckRef(bad), "") << bad;
  }
}

TEST(RoutingTest, TheEmptyNamespaceIsTheMainOne) {
  EXPECT_EQ(NamespaceOrDefault(""), "/");
  EXPECT_EQ(NamespaceOrDefault("/chat"), "/chat");
}

TEST(RoutingTest, WatchPatternsAreSubjects) {
  EXPECT_TRUE(SubjectMatches(ForwardEventPattern("ping"), ForwardSubject("/any", "ping")));
  EXPECT_FALSE(SubjectMatches(ForwardEventPattern("ping"), ForwardSubject("/any", "pong")));
  EXPECT_EQ(WatchQueueGroup("g"), "sbw." + NameToken("g"));
}

TEST(RoutingTest, ApiSubjectsNameTheMethodAndMatchTheBrokersPattern) {
  EXPECT_EQ(ApiSubject("ListSockets"), "sb.v1.api.ListSockets");
  EXPECT_TRUE(SubjectMatches(kAllApi, ApiSubject("Publish")));
  EXPECT_FALSE(SubjectMatches(kAllApi, ForwardSubject("/", "Publish")));
}

}  // namespace
}  // namespace switchboard::bus
