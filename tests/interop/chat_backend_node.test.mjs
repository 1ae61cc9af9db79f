// The Node chat backend (examples/chat-backend/node, @grpc/grpc-js) on a cluster: see
// defineCoreChatTest in lib/chat_backends.mjs.
import { defineCoreChatTest } from "./lib/chat_backends.mjs";

await defineCoreChatTest("node");
