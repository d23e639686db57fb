// What the station's system tests share: a program run in the background, bounded waits, a lane's
// journal as it is on disk, a station binary with a small model and its HTTP API.
#pragma once

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/run.h"
#include "testing.h"

namespace pv::testing {

using namespace std::chrono_literals;

// A program started in the background, its output in `log`.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::filesystem::path& log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> args;
      for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() { stop(SIGKILL); }
  pid_t pid() const { return pid_; }
  // Sends `signal` and waits (at most 60 s) for the exit; returns the exit status (-1: killed).
  int stop(int signal) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signal);
    int status = 0;
    for (int i = 0; i < 600; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(100ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }

 private:
  pid_t pid_ = -1;
};

// Waits until `condition` holds, at most `limit`; returns whether it did.
template <typename Condition>
inline bool wait_until(Condition condition, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return condition();
}

inline bool port_open(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool open = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return open;
}

// The journal's records, by line, across its segments.
inline std::vector<nlohmann::json> journal(const std::filesystem::path& state,
                                           const std::string& lane = "main") {
  std::vector<std::filesystem::path> segments;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(state / "lanes" / lane, error)) {
    if (entry.path().filename().string().starts_with("journal-")) segments.push_back(entry.path());
  }
  std::sort(segments.begin(), segments.end());
  std::vector<nlohmann::json> records;
  for (const auto& segment : segments) {
    std::ifstream in(segment);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) records.push_back(nlohmann::json::parse(line));
    }
  }
  return records;
}

// Synthetic tile images (`counts`: synth's --train/--test-good/--test-bad) and a small model
// (resnet18 at 128 px, ~15 ms an image) trained on them, in <dir>/data and <dir>/models.
inline void train_small_model(const std::filesystem::path& dir, const std::string& counts) {
  auto run = patchvec("-q synth --out " + (dir / "data").string() + " --categories tile " + counts +
                      " --size 128");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  run = patchvec("-q train --data " + (dir / "data").string() +
                 " --category tile --backbone resnet18 --image-size 128 --crop-size 0 --out " +
                 (dir / "models").string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
}

// A station binary with one model (resnet18 at 128 px, trained once per suite), its HTTP API on a
// port of its own, and the views a test reads.
class LiveStationTest : public ::testing::Test {
 protected:
  // A small model (resnet18 at 128 px), once.
  static void SetUpTestSuite() {
    data_ = new TempDir;
    train_small_model(data_->path(), "--train 12 --test-good 1 --test-bad 1");
  }
  static void TearDownTestSuite() {
    delete data_;
    data_ = nullptr;
  }

  std::unique_ptr<Process> start_station(const std::vector<std::string>& more) {
    port_ = closed_port();
    std::vector<std::string> argv{PATCHVEC_BINARY, "station", "--state", (dir_ / "state").string(),
                                  "--name",        "test",    "--port",  std::to_string(port_)};
    if (more.front() != "--config") {
      argv.insert(argv.end(), {"--model", (*data_ / "models/tile.pvm").string()});
    }
    argv.insert(argv.end(), more.begin(), more.end());
    auto station = std::make_unique<Process>(argv, dir_ / "station.log");
    EXPECT_TRUE(wait_until([&] { return port_open(port_); }, 60s)) << log();
    return station;
  }

  nlohmann::json status() const {
    httplib::Client client("127.0.0.1", port_);
    const auto answer = client.Get("/v1/station");
    if (!answer || answer->status != 200) return nlohmann::json::object();
    return nlohmann::json::parse(answer->body);
  }
  nlohmann::json lane(const std::string& name = "main") const {
    const nlohmann::json s = status();
    for (const nlohmann::json& l : s.value("lanes", nlohmann::json::array())) {
      if (l.at("name") == name) return l;
    }
    return nlohmann::json::object();
  }
  // A trigger to a camera that stopped answering is refused after Aravis's control-channel retries
  // (5 x 500 ms), twice that when its heartbeat was retrying at the same moment: more than
  // httplib's default 5 s read timeout (docs/station.md).
  int trigger(const std::string& lane_name = "main") const {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(std::chrono::seconds(15));
    const auto answer =
        client.Post("/v1/station/lanes/" + lane_name + "/trigger", "{}", "application/json");
    return answer ? answer->status : 0;
  }

  std::string log() const { return read_text(dir_ / "station.log"); }

  static inline TempDir* data_ = nullptr;
  TempDir dir_;
  int port_ = 0;
};

}  // namespace pv::testing
