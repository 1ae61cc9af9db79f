#include "policy/template.h"

#include <gtest/gtest.h>

namespace switchboard::policy {
namespace {

class TemplateTest : public ::testing::Test {
 protected:
  Json Eval(const Json& spec, const Json& args, unsigned vars = kVarsBase) {
    auto t = Template::Parse(spec, "t", vars);
    EXPECT_TRUE(t.ok()) << t.status();
    RuleContext ctx;
    ctx.args = &args;
    ctx.socket_id = "sock1";
    ctx.event = "ev";
    ctx.nsp = "/chat";
    ctx.room = "lobby";
    ctx.now_ms = 1700000000000;
    auto v = t->Evaluate(ctx);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : Json();
  }
};

TEST_F(TemplateTest, References) {
  Json args =
      Json::array({Json{{"room", "r1"}, {"message", {{"text", "hi"}}}, {"list", {1, 2}}}, 7});
  EXPECT_EQ(Eval("$.room", args), "r1");
  EXPECT_EQ(Eval("$.message.text", args), "hi");
  EXPECT_EQ(Eval("$.list.1", args), 2);
  EXPECT_EQ(Eval("$args.1", args), 7);
  EXPECT_EQ(Eval("$socket.id", args), "sock1");
  EXPECT_EQ(Eval("$now", args), 1700000000000);
  EXPECT_EQ(Eval("$event", args), "ev");
  EXPECT_EQ(Eval("$nsp", args), "/chat");
  EXPECT_EQ(Eval("$room", args, kVarRoom), "lobby");
  EXPECT_EQ(Eval("$$literal", args), "$literal");
  EXPECT_EQ(Eval("plain", args), "plain");
  EXPECT_TRUE(Eval("$.missing", args).is_discarded());
  EXPECT_TRUE(Eval("$.room.deeper", args).is_discarded());
}

TEST_F(TemplateTest, TheSendersUserIdAndClaims) {
  Json args = Json::array();
  Json claims = {{"username", "alice"}, {"org", {{"name", "acme"}}}};
  RuleContext ctx;
  ctx.args = &args;
  auto eval = [&](const char* spec) {
    auto t = Template::Parse(Json(spec), "t");
    EXPECT_TRUE(t.ok()) << t.status();
    auto v = t->Evaluate(ctx);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : Json();
  };
  // Anonymous, no claims kept: absent.
  EXPECT_TRUE(eval("$socket.userId").is_discarded());
  EXPECT_TRUE(eval("$socket.claims.username").is_discarded());
  ctx.user_id = "u1";
  ctx.claims = &claims;
  EXPECT_EQ(eval("$socket.userId"), "u1");
  EXPECT_EQ(eval("$socket.claims.username"), "alice");
  EXPECT_EQ(eval("$socket.claims.org.name"), "acme");
  EXPECT_TRUE(eval("$socket.claims.missing").is_discarded());
  EXPECT_EQ(eval("$socket.claims.missing|$socket.userId"), "u1");
  // Malformed: no claim named.
  EXPECT_FALSE(Template::Parse(Json("$socket.claims."), "t").ok());
  EXPECT_FALSE(Template::Parse(Json("$socket.claims"), "t").ok());
  EXPECT_FALSE(Template::Parse(Json("$socket.user"), "t").ok());
}

TEST_F(TemplateTest, Alternatives) {
  EXPECT_EQ(Eval("$.room|$", Json::array({Json{{"room", "a"}}})), "a");
  EXPECT_EQ(Eval("$.room|$", Json::array({"b"})), "b");
  EXPECT_EQ(Eval("$.room|$", Json::array({Json{{"room", nullptr}, {"x", 1}}})),
            (Json{{"room", nullptr}, {"x", 1}}));
}

TEST_F(TemplateTest, ObjectsArraysAndSpread) {
  Json args = Json::array({Json{{"text", "hi"}, {"timestamp", 1}}});
  EXPECT_EQ(Eval(Json{{"...", "$"}, {"timestamp", "$now"}}, args),
            (Json{{"text", "hi"}, {"timestamp", 1700000000000}}));
  // Absent references are dropped from objects and null in arrays.
  EXPECT_EQ(Eval(Json{{"from", "$socket.id"}, {"to", "$.to"}}, args), (Json{{"from", "sock1"}}));
  EXPECT_EQ(Eval(Json::array({"$.text", "$.nope", 3}), args), Json::array({"hi", nullptr, 3}));
  // Without arguments at all.
  EXPECT_TRUE(Eval("$", Json::array()).is_discarded());
  EXPECT_EQ(Eval(Json{{"...", "$"}, {"a", 1}}, Json::array()), (Json{{"a", 1}}));

  auto t = Template::Parse(Json{{"...", "$"}}, "t");
  ASSERT_TRUE(t.ok());
  Json str_args = Json::array({"just a string"});
  RuleContext ctx;
  ctx.args = &str_args;
  EXPECT_FALSE(t->Evaluate(ctx).ok());
}

}  // namespace
}  // namespace switchboard::policy
