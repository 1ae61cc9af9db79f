// The edge's WebSocket transport at the level of frames: what official
// clients rarely send (fragments, pings, bad UTF-8, unmasked frames, a close)
// and pipelined traffic, with a client that writes bytes by hand.
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <string>
#include <thread>

#include "tests/edge/protocol_fixture.h"

namespace switchboard::protocol_test {
namespace {

using boost::asio::ip::tcp;

constexpr std::string_view kCalm = "/eio-calm/";  // echo endpoint, 60 s heartbeat

struct ServerFrame {
  int opcode = -1;  // -1: the connection ended (or timed out) first
  std::string payload;
};

class RawWs {
 public:
  // Sends `request_headers` (the upgrade request's header lines after the
  // request line) and reads the answer's head.
  RawWs(uint16_t port, std::string_view target, std::string request_headers) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    timeval timeout{5, 0};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    std::string request = "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                          request_headers + "\r\n";
    boost::asio::write(socket_, boost::asio::buffer(request));
    boost::system::error_code ec;
    size_t n =
        boost::asio::read_until(socket_, boost::asio::dynamic_buffer(buffer_), "\r\n\r\n", ec);
    if (ec) return;
    head_ = buffer_.substr(0, n);
    buffer_.erase(0, n);
    if (head_.size() > 12) status_ = std::stoi(head_.substr(9, 3));
  }

  static std::string UpgradeHeaders() {
    return "Upgrade: websocket\r\nConnection: "
           "Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
  }

  int status() const { return status_; }
  const std::string& head() const { return head_; }

  static std::string Frame(uint8_t first_byte, std::string_view payload, bool masked = true) {
    std::string out(1, static_cast<char>(first_byte));
    uint8_t mask_bit = masked ? 0x80 : 0;
    if (payload.size() < 126) {
      out.push_back(static_cast<char>(mask_bit | payload.size()));
    } else {
      out.push_back(static_cast<char>(mask_bit | 126));
      out.push_back(static_cast<char>(payload.size() >> 8));
      out.push_back(static_cast<char>(payload.size() & 0xFF));
    }
    const char key[4] = {0x11, 0x22, 0x33, 0x44};
    if (masked) out.append(key, 4);
    for (size_t i = 0; i < payload.size(); ++i) {
      out.push_back(masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
    }
    return out;
  }

  void Write(std::string_view bytes) {
    boost::system::error_code ec;
    boost::asio::write(socket_, boost::asio::buffer(bytes), ec);
  }

  ServerFrame Read() {
    ServerFrame frame;
    if (!Fill(2)) return frame;
    auto b0 = static_cast<uint8_t>(buffer_[0]);
    auto b1 = static_cast<uint8_t>(buffer_[1]);
    EXPECT_EQ(b0 & 0x80, 0x80) << "the server sends final frames";
    EXPECT_EQ(b1 & 0x80, 0) << "the server does not mask";
    size_t header = 2;
    uint64_t length = b1 & 0x7F;
    if (length == 126) {
      if (!Fill(4)) return frame;
      length = (static_cast<uint8_t>(buffer_[2]) << 8) | static_cast<uint8_t>(buffer_[3]);
      header = 4;
    } else if (length == 127) {
      if (!Fill(10)) return frame;
      length = 0;
      for (int i = 2; i < 10; ++i) length = (length << 8) | static_cast<uint8_t>(buffer_[i]);
      header = 10;
    }
    if (!Fill(header + length)) return frame;
    frame.opcode = b0 & 0x0F;
    frame.payload = buffer_.substr(header, length);
    buffer_.erase(0, header + length);
    return frame;
  }

  // True when the server closed the TCP connection (EOF) with nothing unread.
  bool AtEof() {
    char byte;
    boost::system::error_code ec;
    size_t n = socket_.read_some(boost::asio::buffer(&byte, 1), ec);
    return n == 0 && ec == boost::asio::error::eof;
  }

 private:
  bool Fill(size_t size) {
    while (buffer_.size() < size) {
      char chunk[65536];
      boost::system::error_code ec;
      size_t n = socket_.read_some(boost::asio::buffer(chunk), ec);
      if (ec) return false;
      buffer_.append(chunk, n);
    }
    return true;
  }

  boost::asio::io_context ioc_;
  tcp::socket socket_;
  std::string buffer_;
  std::string head_;
  int status_ = 0;
};

class WebSocketTransportTest : public ProtocolTest {
 protected:
  // An open WebSocket session on the echo endpoint, its open packet read.
  std::unique_ptr<RawWs> Open() {
    auto ws = std::make_unique<RawWs>(port(), WebSocketUrl(kCalm), RawWs::UpgradeHeaders());
    EXPECT_EQ(ws->status(), 101) << ws->head();
    ServerFrame open = ws->Read();
    EXPECT_EQ(open.opcode, 1);
    EXPECT_EQ(open.payload.substr(0, 1), "0");
    return ws;
  }
};

uint16_t CloseCode(const ServerFrame& frame) {
  if (frame.opcode != 8 || frame.payload.size() < 2) return 0;
  return static_cast<uint16_t>((static_cast<uint8_t>(frame.payload[0]) << 8) |
                               static_cast<uint8_t>(frame.payload[1]));
}

TEST_F(WebSocketTransportTest, UpgradeAnswerCarriesTheAcceptKey) {
  RawWs ws(port(), WebSocketUrl(kCalm), RawWs::UpgradeHeaders());
  EXPECT_EQ(ws.status(), 101);
  // RFC 6455 section 1.3's example key and answer.
  EXPECT_NE(ws.head().find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            std::string::npos)
      << ws.head();
}

TEST_F(WebSocketTransportTest, UpgradeWithoutAKeyIsABadRequest) {
  RawWs no_key(port(), WebSocketUrl(kCalm),
               "Upgrade: websocket\r\nConnection: "
               "Upgrade\r\nSec-WebSocket-Version: 13\r\n");
  EXPECT_EQ(no_key.status(), 400);
  RawWs old_version(port(), WebSocketUrl(kCalm),
                    "Upgrade: websocket\r\nConnection: "
                    "Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
  EXPECT_EQ(old_version.status(), 400);
}

TEST_F(WebSocketTransportTest, FragmentedMessageIsReassembled) {
  auto ws = Open();
  // A ping between the fragments is answered without breaking the message.
  ws->Write(RawWs::Frame(0x01, "4he") + RawWs::Frame(0x00, "ll") + RawWs::Frame(0x89, "x") +
            RawWs::Frame(0x80, "o"));
  ServerFrame pong = ws->Read();
  EXPECT_EQ(pong.opcode, 0xA);
  EXPECT_EQ(pong.payload, "x");
  ServerFrame echo = ws->Read();
  EXPECT_EQ(echo.opcode, 1);
  EXPECT_EQ(echo.payload, "4hello");
}

TEST_F(WebSocketTransportTest, FragmentsInSeparateWritesAreReassembledAgainAndAgain) {
  auto ws = Open();
  // Each fragment arrives in a read of its own, so the message in progress is
  // held between reads, and released once whole; twice, then a plain message.
  for (int round = 0; round < 2; ++round) {
    ws->Write(RawWs::Frame(0x01, "4par"));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ws->Write(RawWs::Frame(0x00, "t"));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ws->Write(RawWs::Frame(0x80, "s"));
    ServerFrame echo = ws->Read();
    EXPECT_EQ(echo.opcode, 1);
    EXPECT_EQ(echo.payload, "4parts");
  }
  ws->Write(RawWs::Frame(0x81, "4whole"));
  EXPECT_EQ(ws->Read().payload, "4whole");
}

TEST_F(WebSocketTransportTest, FrameSplitAcrossWritesIsReassembled) {
  auto ws = Open();
  std::string frame = RawWs::Frame(0x81, "4" + std::string(3000, 'k'));
  for (size_t i = 0; i < frame.size(); i += 700) {
    ws->Write(std::string_view(frame).substr(i, 700));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ServerFrame echo = ws->Read();
  EXPECT_EQ(echo.opcode, 1);
  EXPECT_EQ(echo.payload, "4" + std::string(3000, 'k'));
}

TEST_F(WebSocketTransportTest, PipelinedMessagesAreAllEchoedInOrder) {
  auto ws = Open();
  std::string burst;
  for (int i = 0; i < 2000; ++i) burst += RawWs::Frame(0x81, "4m" + std::to_string(i));
  ws->Write(burst);
  for (int i = 0; i < 2000; ++i) {
    ServerFrame echo = ws->Read();
    ASSERT_EQ(echo.opcode, 1) << i;
    ASSERT_EQ(echo.payload, "4m" + std::to_string(i));
  }
}

TEST_F(WebSocketTransportTest, PingsFromAClientThatDoesNotReadAreNotQueuedWithoutBound) {
  auto ws = Open();
  // 7.5 MB of pings, nothing read meanwhile: far more pongs than the
  // socket buffers hold would have to wait in the server's memory.
  constexpr int kPings = 60000;
  std::string ping = RawWs::Frame(0x89, std::string(125, 'p'));
  std::string burst;
  for (int i = 0; i < 1000; ++i) burst += ping;
  std::thread writer([&] {
    for (int i = 0; i < kPings / 1000; ++i) ws->Write(burst);
    ws->Write(RawWs::Frame(0x81, "4still here"));
  });
  int pongs = 0;
  ServerFrame frame;
  while ((frame = ws->Read()).opcode == 0xA) ++pongs;
  writer.join();
  EXPECT_EQ(frame.opcode, 1);
  EXPECT_EQ(frame.payload, "4still here");
  EXPECT_LT(pongs, kPings);
}

TEST_F(WebSocketTransportTest, InvalidUtf8TextClosesWith1007) {
  auto ws = Open();
  ws->Write(RawWs::Frame(0x81, "4\xC0\xAF"));
  EXPECT_EQ(CloseCode(ws->Read()), 1007);
}

TEST_F(WebSocketTransportTest, UnmaskedFrameClosesWith1002) {
  auto ws = Open();
  ws->Write(RawWs::Frame(0x81, "4hi", /*masked=*/false));
  EXPECT_EQ(CloseCode(ws->Read()), 1002);
}

TEST_F(WebSocketTransportTest, ClientCloseIsEchoedAndTheConnectionEnds) {
  auto ws = Open();
  ws->Write(RawWs::Frame(0x88, std::string("\x03\xE8", 2)));
  EXPECT_EQ(CloseCode(ws->Read()), 1000);
  EXPECT_TRUE(ws->AtEof());
}

}  // namespace
}  // namespace switchboard::protocol_test
