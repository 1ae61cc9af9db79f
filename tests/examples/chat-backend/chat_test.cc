// The chat backend's core (examples/chat-backend/chat.h) on its own: WatchEvents events in, the
// Publish and Ack calls it would make out, with a fixed clock. Who gets what (everyone, everyone
// but one socket, the asker's ack), the user list and its order, and the cleanup on a disconnect
// (any reason, an edge timeout included) and after a resync. Event names and payloads are the
// seed's "complete chat application": joins and leaves are the plain string `notification`
// "alice joined the chat" / "alice left the chat" to everyone but that user.
#include "chat.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace chat {
namespace {

namespace v1 = switchboard::v1;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int64_t kNow = 1'700'000'000'123;

// One call, in a form easy to compare.
struct Call {
  bool is_ack = false;
  std::string nsp;                          // publish: target namespace
  std::vector<std::string> except_sockets;  // publish: target.except_socket_ids
  std::string event;                        // publish: event name
  std::string ack_ref;                      // ack
  json arg;                                 // the single JSON argument
  std::string text;                         // ... as sent (fields in their order)
};

Call Describe(const Action& action) {
  Call call;
  if (const auto* publish = std::get_if<v1::PublishRequest>(&action)) {
    const v1::Target& target = publish->target();
    // The chat always broadcasts to its whole namespace (minus one socket at most).
    EXPECT_THAT(target.rooms(), IsEmpty());
    EXPECT_THAT(target.socket_ids(), IsEmpty());
    EXPECT_THAT(target.user_ids(), IsEmpty());
    EXPECT_THAT(target.except_rooms(), IsEmpty());
    call.nsp = target.namespace_();
    call.except_sockets.assign(target.except_socket_ids().begin(),
                               target.except_socket_ids().end());
    call.event = publish->event();
    EXPECT_EQ(publish->args_size(), 1) << publish->event();
    if (publish->args_size() > 0) {
      call.text = publish->args(0).json();
      call.arg = json::parse(call.text);
    }
  } else {
    const auto& ack = std::get<v1::AckRequest>(action);
    call.is_ack = true;
    call.ack_ref = ack.ack_ref();
    EXPECT_TRUE(ack.error().empty());
    EXPECT_EQ(ack.args_size(), 1);
    if (ack.args_size() > 0) {
      call.text = ack.args(0).json();
      call.arg = json::parse(call.text);
    }
  }
  return call;
}

std::vector<Call> Describe(const std::vector<Action>& actions) {
  std::vector<Call> calls;
  for (const Action& action : actions) calls.push_back(Describe(action));
  return calls;
}

std::vector<std::string> Events(const std::vector<Call>& calls) {
  std::vector<std::string> events;
  for (const Call& call : calls) events.push_back(call.is_ack ? "ack" : call.event);
  return events;
}

class ChatTest : public ::testing::Test {
 protected:
  // A client event from `socket`, with JSON arguments `args`; `ack_ref` non-empty: it asked for
  // an ack.
  std::vector<Call> Emit(const std::string& socket, const std::string& event,
                         const std::vector<std::string>& args, const std::string& ack_ref = "",
                         const std::string& nsp = "/") {
    v1::WatchEventsResponse response;
    v1::ClientEvent* e = response.mutable_client_event();
    e->set_socket_id(socket);
    e->set_namespace_(nsp);
    e->set_event(event);
    for (const std::string& arg : args) e->add_args()->set_json(arg);
    e->set_wants_ack(!ack_ref.empty());
    e->set_ack_ref(ack_ref);
    return Describe(chat_.OnEvent(response));
  }

  std::vector<Call> Disconnect(const std::string& socket, const std::string& reason,
                               const std::string& nsp = "/") {
    v1::WatchEventsResponse response;
    v1::SocketDisconnected* d = response.mutable_disconnected();
    d->set_socket_id(socket);
    d->set_namespace_(nsp);
    d->set_reason(reason);
    return Describe(chat_.OnEvent(response));
  }

  // Joins `name` from `socket` without an ack; expects it to succeed.
  void Join(const std::string& socket, const std::string& name) {
    std::vector<Call> calls = Emit(socket, "user-join", {json(name).dump()});
    ASSERT_THAT(Events(calls), ElementsAre("notification", "user-list")) << name;
  }

  // The error an ack carries.
  static std::string Error(const std::vector<Call>& calls) {
    EXPECT_EQ(calls.size(), 1u);
    if (calls.size() != 1 || !calls[0].is_ack) return "(no ack)";
    EXPECT_EQ(calls[0].arg.value("ok", true), false);
    return calls[0].arg.value("error", "");
  }

  Chat chat_{"/", [] { return kNow; }};
};

TEST_F(ChatTest, JoinNoticesTheOthersListsEveryoneAndAcksTheJoiner) {
  std::vector<Call> calls = Emit("s1", "user-join", {R"("alice")"}, "e1.n.1");
  ASSERT_THAT(Events(calls), ElementsAre("notification", "user-list", "ack"));

  // The notice first, to everyone but the joiner: a plain string, as the seed sends it.
  EXPECT_EQ(calls[0].nsp, "/");
  EXPECT_THAT(calls[0].except_sockets, ElementsAre("s1"));
  EXPECT_EQ(calls[0].arg, json("alice joined the chat"));
  // Then the list, to everyone.
  EXPECT_EQ(calls[1].nsp, "/");
  EXPECT_THAT(calls[1].except_sockets, IsEmpty());
  EXPECT_EQ(calls[1].arg, json::array({"alice"}));
  // The ack goes to the asker's reference.
  EXPECT_EQ(calls[2].ack_ref, "e1.n.1");
  EXPECT_EQ(calls[2].arg,
            (json{{"ok", true}, {"username", "alice"}, {"users", json::array({"alice"})}}));

  calls = Emit("s2", "user-join", {R"({"username":"  bob "})"}, "e2.n.7");
  ASSERT_THAT(Events(calls), ElementsAre("notification", "user-list", "ack"));
  EXPECT_THAT(calls[0].except_sockets, ElementsAre("s2"));
  EXPECT_EQ(calls[0].arg, json("bob joined the chat")) << "the name is trimmed";
  EXPECT_EQ(calls[1].arg, json::array({"alice", "bob"})) << "join order";
  EXPECT_EQ(calls[2].arg["users"], json::array({"alice", "bob"}));
  EXPECT_THAT(chat_.Usernames(), ElementsAre("alice", "bob"));
}

TEST_F(ChatTest, NoAckIsSentWhenTheClientDidNotAskForOne) {
  EXPECT_THAT(Events(Emit("s1", "user-join", {R"("alice")"})),
              ElementsAre("notification", "user-list"));
  EXPECT_THAT(Events(Emit("s1", "chat-message", {R"("hi")"})), ElementsAre("chat-message"));
  // Errors too: nothing at all without an ack to carry them.
  EXPECT_THAT(Emit("s1", "user-join", {R"("again")"}), IsEmpty());
  EXPECT_THAT(Emit("s9", "chat-message", {R"("hi")"}), IsEmpty());
}

TEST_F(ChatTest, InvalidUsernamesAreRefusedAndChangeNothing) {
  const std::string too_long = json(std::string(kMaxUsernameBytes + 1, 'x')).dump();
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {}, {R"("")"}, {R"("   ")"}, {"42"}, {"null"}, {R"({"name":"x"})"}, {too_long}}) {
    EXPECT_EQ(Error(Emit("s1", "user-join", args, "r")), "invalid username")
        << (args.empty() ? "(none)" : args[0]);
  }
  // A binary first argument is no name either.
  v1::WatchEventsResponse binary;
  binary.mutable_client_event()->set_namespace_("/");
  binary.mutable_client_event()->set_socket_id("s1");
  binary.mutable_client_event()->set_event("user-join");
  binary.mutable_client_event()->add_args()->set_binary("alice");
  binary.mutable_client_event()->set_wants_ack(true);
  binary.mutable_client_event()->set_ack_ref("r");
  EXPECT_EQ(Error(Describe(chat_.OnEvent(binary))), "invalid username");
  EXPECT_THAT(chat_.Usernames(), IsEmpty());

  // The longest name that fits.
  const std::string longest(kMaxUsernameBytes, 'y');
  EXPECT_THAT(Events(Emit("s1", "user-join", {json(longest).dump()}, "r")),
              ElementsAre("notification", "user-list", "ack"));
  EXPECT_EQ(Error(Emit("s1", "user-join", {R"("other")"}, "r")), "already joined");
  EXPECT_THAT(chat_.Usernames(), ElementsAre(longest));
}

TEST_F(ChatTest, ChatMessageGoesToEveryoneWithUsernameAndTimestamp) {
  EXPECT_EQ(Error(Emit("s1", "chat-message", {R"("early")"}, "r")), "join first");
  Join("s1", "alice");
  Join("s2", "bob");

  std::vector<Call> calls = Emit("s2", "chat-message", {R"("hello")"}, "e.n.3");
  ASSERT_THAT(Events(calls), ElementsAre("chat-message", "ack"));
  EXPECT_THAT(calls[0].except_sockets, IsEmpty()) << "the sender sees it too";
  // The seed's fields, in the seed's order.
  EXPECT_EQ(calls[0].text, R"({"username":"bob","message":"hello","timestamp":1700000000123})");
  EXPECT_EQ(calls[1].ack_ref, "e.n.3");
  EXPECT_EQ(calls[1].arg, (json{{"ok", true}}));

  calls = Emit("s1", "chat-message", {R"({"message":" spaced "})"});
  ASSERT_THAT(Events(calls), ElementsAre("chat-message"));
  EXPECT_EQ(calls[0].arg["username"], "alice");
  EXPECT_EQ(calls[0].arg["message"], " spaced ") << "a message is sent as typed";

  const std::string longest(kMaxMessageBytes, 'm');
  EXPECT_THAT(Events(Emit("s1", "chat-message", {json(longest).dump()})),
              ElementsAre("chat-message"));
  for (const std::string& bad :
       {std::string(R"("")"), std::string(R"("  \n ")"), std::string("[1]"),
        json(std::string(kMaxMessageBytes + 1, 'm')).dump()}) {
    EXPECT_EQ(Error(Emit("s1", "chat-message", {bad}, "r")), "invalid message") << bad;
  }
}

TEST_F(ChatTest, TypingGoesToEveryoneButTheTyper) {
  EXPECT_EQ(Error(Emit("s1", "typing", {}, "r")), "join first");
  Join("s1", "alice");
  Join("s2", "bob");

  struct Case {
    const char* event;
    std::vector<std::string> args;
    bool typing;
  };
  for (const Case& c : std::vector<Case>{{"typing", {}, true},
                                         {"typing", {"false"}, false},
                                         {"typing", {"true"}, true},
                                         {"typing", {R"({"isTyping":false})"}, false},
                                         {"typing", {R"({"isTyping":true})"}, true},
                                         {"stop-typing", {}, false},
                                         {"stop-typing", {"true"}, false}}) {
    std::vector<Call> calls = Emit("s2", c.event, c.args, "r");
    ASSERT_THAT(Events(calls), ElementsAre("typing", "ack")) << c.event;
    EXPECT_THAT(calls[0].except_sockets, ElementsAre("s2"));
    EXPECT_EQ(calls[0].text,
              std::string(R"({"username":"bob","isTyping":)") + (c.typing ? "true}" : "false}"))
        << c.event << " " << (c.args.empty() ? "" : c.args[0]);
    EXPECT_EQ(calls[1].arg, (json{{"ok", true}}));
  }
}

TEST_F(ChatTest, ADisconnectNoticesTheOthersAndUpdatesTheList) {
  Join("s1", "alice");
  Join("s2", "bob");
  Join("s3", "carol");

  std::vector<Call> calls = Disconnect("s2", "transport close");
  ASSERT_THAT(Events(calls), ElementsAre("notification", "user-list"));
  EXPECT_THAT(calls[0].except_sockets, ElementsAre("s2"));
  EXPECT_EQ(calls[0].arg, json("bob left the chat"));
  EXPECT_THAT(calls[1].except_sockets, IsEmpty());
  EXPECT_EQ(calls[1].arg, json::array({"alice", "carol"})) << "join order kept";

  // Told twice (each broker reports an edge's timeout to its own watchers): once is enough.
  EXPECT_THAT(Disconnect("s2", "edge timeout"), IsEmpty());
  // Sockets that never joined leave silently.
  EXPECT_THAT(Disconnect("s9", "transport close"), IsEmpty());
  // The socket's messages are refused from now on; a new socket may take the name again.
  EXPECT_EQ(Error(Emit("s2", "chat-message", {R"("ghost")"}, "r")), "join first");
  Join("s4", "bob");
  EXPECT_THAT(chat_.Usernames(), ElementsAre("alice", "carol", "bob"));
}

TEST_F(ChatTest, TheSocketsOfADeadEdgeLeaveOneByOne) {
  Join("a.1", "alice");
  Join("b.1", "bob");
  Join("b.2", "eve");
  // The broker turns the dead edge's sockets into disconnects with reason "edge timeout".
  std::vector<Call> bob = Disconnect("b.1", "edge timeout");
  std::vector<Call> eve = Disconnect("b.2", "edge timeout");
  ASSERT_THAT(Events(bob), ElementsAre("notification", "user-list"));
  ASSERT_THAT(Events(eve), ElementsAre("notification", "user-list"));
  EXPECT_EQ(bob[0].arg, json("bob left the chat"));
  EXPECT_EQ(eve[0].arg, json("eve left the chat"));
  EXPECT_EQ(eve[1].arg, json::array({"alice"}));
}

TEST_F(ChatTest, AUserWhoLeavesWhileTypingStopsTyping) {
  Join("s1", "alice");
  Join("s2", "bob");
  ASSERT_THAT(Events(Emit("s2", "typing", {"true"})), ElementsAre("typing"));
  std::vector<Call> calls = Disconnect("s2", "ping timeout");
  ASSERT_THAT(Events(calls), ElementsAre("typing", "notification", "user-list"));
  EXPECT_THAT(calls[0].except_sockets, ElementsAre("s2"));
  EXPECT_EQ(calls[0].arg, (json{{"username", "bob"}, {"isTyping", false}}));

  // Typing that already stopped is not announced again.
  Join("s3", "carol");
  ASSERT_THAT(Events(Emit("s3", "typing", {})), ElementsAre("typing"));
  ASSERT_THAT(Events(Emit("s3", "stop-typing", {})), ElementsAre("typing"));
  EXPECT_THAT(Events(Disconnect("s3", "transport close")),
              ElementsAre("notification", "user-list"));
}

TEST_F(ChatTest, ResyncDropsTheUsersWhoseSocketsAreGone) {
  Join("s1", "alice");
  Join("s2", "bob");
  Join("s3", "carol");
  std::vector<Call> calls = Describe(chat_.Resync({"s1", "s3", "s-new"}));
  ASSERT_THAT(Events(calls), ElementsAre("notification", "user-list"));
  EXPECT_EQ(calls[0].arg, json("bob left the chat"));
  EXPECT_THAT(calls[0].except_sockets, ElementsAre("s2"));
  EXPECT_EQ(calls[1].arg, json::array({"alice", "carol"}));

  EXPECT_THAT(chat_.Resync({"s1", "s3"}), IsEmpty()) << "nothing changed";
  calls = Describe(chat_.Resync({}));
  EXPECT_THAT(Events(calls), ElementsAre("notification", "user-list", "notification", "user-list"));
  EXPECT_EQ(calls.back().arg, json::array());
  EXPECT_THAT(chat_.Usernames(), IsEmpty());
}

TEST_F(ChatTest, OtherNamespacesAndEventsAreNotItsBusiness) {
  Join("s1", "alice");
  // Another namespace's events and disconnects, even for the same socket id.
  EXPECT_THAT(Emit("s2", "user-join", {R"("bob")"}, "r", "/other"), IsEmpty());
  EXPECT_THAT(Disconnect("s1", "transport close", "/other"), IsEmpty());
  EXPECT_THAT(chat_.Usernames(), ElementsAre("alice"));
  // Events of other kinds.
  v1::WatchEventsResponse connected;
  connected.mutable_connected()->mutable_socket()->set_id("s5");
  connected.mutable_connected()->mutable_socket()->set_namespace_("/");
  EXPECT_THAT(chat_.OnEvent(connected), IsEmpty());
  v1::WatchEventsResponse joined;
  joined.mutable_joined()->set_socket_id("s1");
  joined.mutable_joined()->set_namespace_("/");
  joined.mutable_joined()->set_room("r");
  EXPECT_THAT(chat_.OnEvent(joined), IsEmpty());
  // An event it does not know: an error ack, nothing published.
  EXPECT_EQ(Error(Emit("s1", "dance", {}, "r")), "unknown event");
}

TEST(ChatNamespaceTest, ItPublishesInItsOwnNamespace) {
  Chat chat("/chat", [] { return kNow; });
  v1::WatchEventsResponse response;
  v1::ClientEvent* e = response.mutable_client_event();
  e->set_socket_id("s1");
  e->set_namespace_("/chat");
  e->set_event("user-join");
  e->add_args()->set_json(R"("alice")");
  std::vector<Call> calls = Describe(chat.OnEvent(response));
  ASSERT_EQ(calls.size(), 2u);
  for (const Call& call : calls) EXPECT_EQ(call.nsp, "/chat");
  EXPECT_EQ(chat.nsp(), "/chat");
}

}  // namespace
}  // namespace chat
