#pragma once

// Runs a real nats-server on a free loopback port for the tests.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace switchboard::bus::testing {

class NatsServer {
 public:
  // `extra_args` go to nats-server as they are (e.g. {"--max_payload", "65536"}).
  explicit NatsServer(std::vector<std::string> extra_args = {})
      : port_(FreePort()), extra_args_(std::move(extra_args)) {}
  ~NatsServer() { Stop(); }
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  static std::string Binary() {
    if (access("/usr/sbin/nats-server", X_OK) == 0) return "/usr/sbin/nats-server";
    return "nats-server";  // from PATH
  }

  // Starts the server and waits (at most 5 s) until it accepts.
  bool Start() {
    std::string port = std::to_string(port_);
    std::string bin = Binary();
    std::vector<std::string> args = {bin, "-a", "127.0.0.1", "-p", port};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
      int devnull = open("/dev/null", O_WRONLY);
      if (devnull >= 0) {
        dup2(devnull, STDOUT_FILENO);
        dup2(devnull, STDERR_FILENO);
      }
      execvp(bin.c_str(), argv.data());
      _exit(127);
    }
    if (pid_ < 0) return false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Accepts()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Kills the server (SIGKILL: an abrupt outage) and reaps it.
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // A nats-server configuration file holding `text` (e.g. "max_payload: 65536",
  // which nats-server 2.9 takes only from a file), removed with the server;
  // pass {"-c", path} as extra_args.
  static std::string WriteConfig(const std::string& text) {
    char path[] = "/tmp/sb_nats_XXXXXX.conf";
    int fd = mkstemps(path, 5);
    if (fd < 0) return "";
    ssize_t written = write(fd, text.data(), text.size());
    close(fd);
    return written == static_cast<ssize_t>(text.size()) ? path : "";
  }

  int port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
  }

 private:
  bool Accepts() const {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    return ok;
  }

  int port_;
  std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
};

}  // namespace switchboard::bus::testing
