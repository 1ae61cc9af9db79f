// The Python chat backend (examples/chat-backend/python, Debian python3-grpcio) on a cluster:
// see defineCoreChatTest in lib/chat_backends.mjs.
import { defineCoreChatTest } from "./lib/chat_backends.mjs";

await defineCoreChatTest("python");
