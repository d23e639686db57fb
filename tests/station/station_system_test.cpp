// `patchvec station` end to end, as a line would run it: the real binary, Debian's mosquitto
// broker on 127.0.0.1, a subscriber through libmosquitto, kill -9 at random moments, a broker
// that goes away for ten seconds. Every wait is bounded.
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <mosquitto.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/run.h"
#include "station/station_testing.h"
#include "testing.h"

namespace pv::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// Debian's mosquitto on 127.0.0.1:port, keeping sessions across its restarts (persistence).
class Broker {
 public:
  Broker(const std::filesystem::path& dir, int port) : dir_(dir), port_(port) {
    std::filesystem::create_directories(dir_);
    write_text(dir_ / "mosquitto.conf", "listener " + std::to_string(port) +
                                            " 127.0.0.1\nallow_anonymous true\n"
                                            "persistence true\npersistence_location " +
                                            dir_.string() + "/\nautosave_interval 1\nuser root\n");
  }
  void start() {
    process_ = std::make_unique<Process>(
        std::vector<std::string>{"mosquitto", "-c", (dir_ / "mosquitto.conf").string()},
        dir_ / "mosquitto.log");
    ASSERT_TRUE(wait_until([&] { return port_open(port_); }, 20s))
        << read_text(dir_ / "mosquitto.log");
  }
  void stop() {
    if (process_) process_->stop(SIGTERM);
    process_.reset();
  }
  int port() const { return port_; }

 private:
  std::filesystem::path dir_;
  int port_;
  std::unique_ptr<Process> process_;
};

// A QoS 1 subscriber with a session the broker keeps (clean_session false), reconnecting by
// itself: what a line's controller would run.
class Subscriber {
 public:
  Subscriber(int port, const std::string& topic) {
    mosquitto_lib_init();
    client_ = mosquitto_new("station-test-subscriber", false, this);
    mosquitto_reconnect_delay_set(client_, 1, 1, false);
    mosquitto_connect_callback_set(client_, [](mosquitto* m, void*, int rc) {
      if (rc == 0) mosquitto_subscribe(m, nullptr, "line/#", 1);
    });
    mosquitto_message_callback_set(client_, [](mosquitto*, void* self, const mosquitto_message* m) {
      auto* me = static_cast<Subscriber*>(self);
      const std::lock_guard lock(me->mutex_);
      me->messages_.emplace_back(m->topic, std::string(static_cast<const char*>(m->payload),
                                                       static_cast<std::size_t>(m->payloadlen)));
    });
    (void)topic;
    EXPECT_EQ(mosquitto_connect(client_, "127.0.0.1", port, 30), MOSQ_ERR_SUCCESS);
    mosquitto_loop_start(client_);
  }
  ~Subscriber() {
    mosquitto_disconnect(client_);
    mosquitto_loop_stop(client_, true);
    mosquitto_destroy(client_);
  }
  // The keys of the results received on `topic` (each once), and how many messages carried them.
  std::set<std::string> keys(const std::string& topic, std::size_t* messages = nullptr) const {
    const std::lock_guard lock(mutex_);
    std::set<std::string> out;
    std::size_t count = 0;
    for (const auto& [t, payload] : messages_) {
      if (t != topic) continue;
      ++count;
      out.insert(Json::parse(payload).at("key").get<std::string>());
    }
    if (messages != nullptr) *messages = count;
    return out;
  }
  std::vector<std::string> payloads(const std::string& topic) const {
    const std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [t, payload] : messages_) {
      if (t == topic) out.push_back(payload);
    }
    return out;
  }

 private:
  mosquitto* client_ = nullptr;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, std::string>> messages_;
};

std::size_t files_in(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) n += entry.is_regular_file();
  return n;
}

class StationTest : public ::testing::Test {
 protected:
  // A small model (resnet18 at 128 px, ~15 ms an image) and a few images to drop, once.
  static void SetUpTestSuite() {
    data_ = new TempDir;
    train_small_model(data_->path(), "--train 20 --test-good 4 --test-bad 1");
    if (::testing::Test::HasFatalFailure()) return;
    for (const auto& entry :
         std::filesystem::recursive_directory_iterator(*data_ / "data/tile/test")) {
      if (entry.path().extension() == ".png" && images_.size() < 8) {
        images_.push_back(read_text(entry.path()));
      }
    }
    ASSERT_GE(images_.size(), 5u);
  }
  static void TearDownTestSuite() {
    delete data_;
    data_ = nullptr;
  }

  std::unique_ptr<Process> start_station(int broker_port,
                                         const std::vector<std::string>& more = {}) {
    std::vector<std::string> argv{
        PATCHVEC_BINARY, "station",
        "--model",       (*data_ / "models/tile.pvm").string(),
        "--folder",      (dir_ / "in").string(),
        "--mqtt",        "mqtt://127.0.0.1:" + std::to_string(broker_port) + "/line/main",
        "--state",       (dir_ / "state").string(),
        "--name",        "test",
        "--port",        "0"};
    argv.insert(argv.end(), more.begin(), more.end());
    return std::make_unique<Process>(argv, dir_ / "station.log");
  }

  // Drops image `n` as a camera's software would: written in place, or written under a .part
  // name and renamed in.
  void drop(int n) {
    const std::string name = "img-" + std::to_string(1000 + n) + ".png";
    const std::string& bytes = images_[static_cast<std::size_t>(n) % images_.size()];
    if (n % 2 == 0) {
      write_text(dir_ / "in" / name, bytes);
    } else {
      write_text(dir_ / "in" / (name + ".part"), bytes);
      std::filesystem::rename(dir_ / "in" / (name + ".part"), dir_ / "in" / name);
    }
  }

  std::string log() const { return read_text(dir_ / "station.log"); }

  static TempDir* data_;
  static std::vector<std::string> images_;
  TempDir dir_;
};

TempDir* StationTest::data_ = nullptr;
std::vector<std::string> StationTest::images_;

TEST_F(StationTest, EachImageExactlyOnceAcrossTwoKillNines) {
  Broker broker(dir_ / "broker", closed_port());
  broker.start();
  Subscriber subscriber(broker.port(), "line/main");
  std::filesystem::create_directories(dir_ / "in");
  // Three complete files and one still being written when the station starts.
  for (int n = 0; n < 3; ++n) drop(n);
  const std::string& half_bytes = images_[3];
  // O_CLOEXEC: the station, started after, must not inherit the writer's descriptor.
  const int half = ::open((dir_ / "in/half.png").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_EQ(::write(half, half_bytes.data(), half_bytes.size() / 2),
            static_cast<ssize_t>(half_bytes.size() / 2));

  auto station = start_station(broker.port());
  ASSERT_TRUE(wait_until([&] { return journal(dir_ / "state").size() == 3; }, 60s)) << log();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(journal(dir_ / "state").size(), 3u) << "took the half-written file early";
  EXPECT_TRUE(std::filesystem::exists(dir_ / "in/half.png"));
  const std::size_t rest = half_bytes.size() - half_bytes.size() / 2;
  ASSERT_EQ(::write(half, half_bytes.data() + half_bytes.size() / 2, rest),
            static_cast<ssize_t>(rest));
  ::close(half);
  ASSERT_TRUE(wait_until([&] { return journal(dir_ / "state").size() == 4; }, 30s)) << log();
  EXPECT_EQ(journal(dir_ / "state").back()["name"], "half.png");
  EXPECT_NE(journal(dir_ / "state").back()["verdict"], "error");

  // 300 images dropped while the station runs; kill -9 at two random moments, restarted at once.
  constexpr int kImages = 300;
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    for (int n = 3; n < 3 + kImages; ++n) {
      drop(n);
      std::this_thread::sleep_for(5ms);
    }
    writing = false;
  });
  std::mt19937 rng(std::random_device{}());
  for (int kill = 0; kill < 2; ++kill) {
    const auto after =
        std::chrono::milliseconds(std::uniform_int_distribution<int>(200, 1200)(rng));
    std::this_thread::sleep_for(after);
    const std::size_t recorded = journal(dir_ / "state").size();
    station->stop(SIGKILL);
    std::cout << "kill -9 after " << after.count() << " ms, " << recorded << " results recorded\n";
    station = start_station(broker.port());
    // The next kill falls while this one inspects, not while it starts.
    ASSERT_TRUE(wait_until([&] { return journal(dir_ / "state").size() > recorded; }, 60s))
        << log();
  }
  writer.join();
  const std::size_t total = 4 + kImages;
  ASSERT_TRUE(wait_until(
      [&] { return journal(dir_ / "state").size() >= total && files_in(dir_ / "in") == 0; }, 120s))
      << journal(dir_ / "state").size() << " of " << total << " recorded\n"
      << log();
  const auto records = journal(dir_ / "state");
  ASSERT_EQ(records.size(), total);
  std::map<std::string, int> names;
  std::set<std::string> keys;
  for (const auto& record : records) {
    ++names[record["name"].get<std::string>()];
    keys.insert(record["key"].get<std::string>());
    EXPECT_NE(record["verdict"], "error") << record.dump();
  }
  EXPECT_EQ(names.size(), total);
  for (const auto& [name, count] : names) EXPECT_EQ(count, 1) << name;
  EXPECT_EQ(files_in(dir_ / "in/done"), total);
  // Every result reached the subscriber (some twice, after a kill: the key tells).
  ASSERT_TRUE(wait_until([&] { return subscriber.keys("line/main").size() == total; }, 60s))
      << subscriber.keys("line/main").size() << " of " << total << " keys delivered\n"
      << log();
  std::size_t messages = 0;
  EXPECT_EQ(subscriber.keys("line/main", &messages), keys);
  std::cout << messages << " messages for " << total << " results\n";
  EXPECT_EQ(station->stop(SIGTERM), 0) << log();
  EXPECT_EQ(read_text(dir_ / "state/lanes/main/mqtt-0.position"), std::to_string(total) + "\n");
  // The status topic ends "offline" (retained): the clean stop said so.
  const auto statuses = subscriber.payloads("line/main/status");
  ASSERT_FALSE(statuses.empty());
  EXPECT_EQ(Json::parse(statuses.back())["status"], "offline");
}

TEST_F(StationTest, NothingIsLostWhileTheBrokerIsDownForTenSeconds) {
  Broker broker(dir_ / "broker", closed_port());
  broker.start();
  Subscriber subscriber(broker.port(), "line/main");
  std::filesystem::create_directories(dir_ / "in");
  auto station =
      start_station(broker.port(), {"--archive", (dir_ / "evidence").string(), "--archive-all"});
  for (int n = 0; n < 20; ++n) drop(n);
  ASSERT_TRUE(wait_until([&] { return subscriber.keys("line/main").size() == 20; }, 60s)) << log();

  broker.stop();
  const auto down = std::chrono::steady_clock::now();
  for (int n = 20; n < 50; ++n) {
    drop(n);
    std::this_thread::sleep_for(300ms);
  }
  // Inspected and recorded meanwhile; waiting in the outbox.
  ASSERT_TRUE(wait_until([&] { return journal(dir_ / "state").size() == 50; }, 30s)) << log();
  EXPECT_EQ(subscriber.keys("line/main").size(), 20u);
  std::this_thread::sleep_until(down + 10s);
  broker.start();
  ASSERT_TRUE(wait_until([&] { return subscriber.keys("line/main").size() == 50; }, 60s))
      << subscriber.keys("line/main").size() << " of 50 delivered\n"
      << log();
  std::set<std::string> keys;
  for (const auto& record : journal(dir_ / "state")) keys.insert(record["key"].get<std::string>());
  EXPECT_EQ(subscriber.keys("line/main"), keys);
  EXPECT_NE(log().find("connection lost"), std::string::npos) << log();
  EXPECT_EQ(station->stop(SIGTERM), 0) << log();
  EXPECT_EQ(read_text(dir_ / "state/lanes/main/mqtt-0.position"), "50\n");  // the outbox is empty
  // Every image's evidence, as its result names it: the image, its heatmap, its result.
  for (const auto& record : journal(dir_ / "state")) {
    const std::filesystem::path evidence = record["evidence"].get<std::string>();
    EXPECT_EQ(read_text(evidence / record["name"].get<std::string>()),
              read_text(dir_ / "in/done" / record["name"].get<std::string>()));
    EXPECT_GT(std::filesystem::file_size(evidence / "heatmap.png"), 1000u);
    EXPECT_EQ(nlohmann::json::parse(read_text(evidence / "result.json"))["key"], record["key"]);
  }
}

TEST_F(StationTest, CheckValidatesAConfigurationAndNamesTheMistake) {
  std::filesystem::create_directories(dir_ / "in");
  const std::string lane = "[[lanes]]\nname = \"top\"\nmodel = \"" +
                           (*data_ / "models/tile.pvm").string() + "\"\n[lanes.folder]\ndir = \"" +
                           (dir_ / "in").string() + "\"\n";
  write_text(dir_ / "good.toml",
             lane + "[[lanes.mqtt]]\nurl = \"mqtt://127.0.0.1:1883/line/top\"\n");
  auto run = patchvec("station --config " + (dir_ / "good.toml").string() + " --check");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("configuration valid"), std::string::npos) << run.output;

  write_text(dir_ / "bad.toml", lane + "colour = \"red\"\n");
  run = patchvec("station --config " + (dir_ / "bad.toml").string() + " --check");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("bad.toml: lanes[0].folder.colour: unknown key"), std::string::npos)
      << run.output;

  run = patchvec("station --model " + (dir_ / "none.pvm").string() + " --folder " +
                 (dir_ / "in").string() + " --check");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("lanes[0].model: "), std::string::npos) << run.output;

  run = patchvec("station --model " + (*data_ / "models/tile.pvm").string() + " --folder " +
                 (dir_ / "in").string() + " --mqtt http://127.0.0.1/x --check");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("--mqtt: the scheme is not mqtt"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace pv::testing
