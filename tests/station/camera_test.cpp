// A station's camera lanes end to end: the real binary and Aravis's simulated GigE Vision camera
// (arv-fake-gv-camera-0.8 from Debian's aravis-tools) on a veth pair into a network namespace the
// test creates, as a camera on its own network; and Aravis's in-process fake camera. Every wait is
// bounded.
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cli/run.h"
#include "station/station_testing.h"
#include "testing.h"

namespace pv::testing {
namespace {

using Json = nlohmann::json;

// A network namespace with a veth pair: this side <prefix>.1, the camera's side <prefix>.2.
class CameraNetwork {
 public:
  CameraNetwork() {
    const int n = static_cast<int>(::getpid() % 200) + 20;
    prefix_ = "10.213." + std::to_string(n);
    name_ = "pvcam" + std::to_string(::getpid());
    ok_ = run("ip netns add " + name_) &&
          run("ip link add " + name_ + "h type veth peer name " + name_ + "c netns " + name_) &&
          run("ip addr add " + prefix_ + ".1/24 dev " + name_ + "h") &&
          run("ip link set " + name_ + "h up") &&
          run("ip -n " + name_ + " addr add " + prefix_ + ".2/24 dev " + name_ + "c") &&
          run("ip -n " + name_ + " link set " + name_ + "c up") &&
          run("ip -n " + name_ + " link set lo up");
  }
  ~CameraNetwork() { run("ip netns del " + name_); }
  CameraNetwork(const CameraNetwork&) = delete;
  CameraNetwork& operator=(const CameraNetwork&) = delete;

  bool ok() const { return ok_; }
  std::string camera_address() const { return prefix_ + ".2"; }
  // The simulated camera, in the namespace.
  std::unique_ptr<Process> start_camera(const std::filesystem::path& log) const {
    return std::make_unique<Process>(
        std::vector<std::string>{"ip", "netns", "exec", name_, "arv-fake-gv-camera-0.8", "-i",
                                 camera_address(), "-s", "PVTEST"},
        log);
  }

 private:
  static bool run(const std::string& command) {
    return std::system((command + " 2>/dev/null").c_str()) == 0;
  }
  std::string prefix_, name_;
  bool ok_ = false;
};

class CameraTest : public LiveStationTest {
 protected:
  // Triggers the lane's camera and waits (bounded) for the journal to hold `before + 1` records;
  // says what it saw when it does not.
  ::testing::AssertionResult triggered_frame_is_journaled(std::size_t before) {
    const int status = trigger();
    if (status != 200) return ::testing::AssertionFailure() << "trigger answered " << status;
    if (wait_until([&] { return journal(dir_ / "state").size() >= before + 1; }, 20s) &&
        journal(dir_ / "state").size() == before + 1) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "after trigger " << before + 1 << " the journal holds "
           << journal(dir_ / "state").size() << " records; lane: " << lane().dump();
  }
};

// The nice level of each of `pid`'s threads named `name` (/proc/<pid>/task/<tid>/stat's 19th
// field).
std::vector<int> thread_nice_levels(pid_t pid, const std::string& name) {
  std::vector<int> levels;
  std::error_code error;
  const auto tasks = std::filesystem::path("/proc") / std::to_string(pid) / "task";
  for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
    std::string comm = read_text(task.path() / "comm");
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm != name) continue;
    const std::string stat = read_text(task.path() / "stat");
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
    std::string field;
    for (int i = 3; i <= 19 && fields >> field; ++i) {
    }
    levels.push_back(std::stoi(field));
  }
  return levels;
}

// Distinct frames recorded by the lane: every name once.
std::set<std::string> frame_names(const std::vector<Json>& records) {
  std::set<std::string> names;
  for (const Json& record : records) names.insert(record.at("name").get<std::string>());
  return names;
}

TEST_F(CameraTest, EveryTriggeredFrameIsInspectedOnceAndACameraRestartIsReconnected) {
  CameraNetwork network;
  ASSERT_TRUE(network.ok()) << "needs root and ip netns";
  auto camera = network.start_camera(dir_ / "camera.log");
  auto station = start_station({"--camera", network.camera_address(), "--trigger", "software",
                                "--pixel-format", "BayerRG8"});
  ASSERT_TRUE(wait_until([&] { return lane().value("source_connected", false); }, 30s)) << log();
  // Aravis's receiving thread runs above the inspection (root here: allowed).
  EXPECT_EQ(thread_nice_levels(station->pid(), "arv_gv_stream"), std::vector<int>{-10});

  // One trigger after another frame is in: a camera ignores a trigger while it is still sending a
  // frame, and on a loaded machine the simulated camera may take longer than any fixed pause.
  constexpr int kFrames = 12;
  for (int i = 0; i < kFrames; ++i) {
    ASSERT_TRUE(triggered_frame_is_journaled(i)) << log();
  }
  auto records = journal(dir_ / "state");
  EXPECT_EQ(frame_names(records).size(), static_cast<std::size_t>(kFrames));
  for (const Json& record : records) {
    EXPECT_NE(record.at("verdict"), "error") << record.dump();
    EXPECT_TRUE(record.at("name").get<std::string>().starts_with("frame-")) << record.dump();
  }
  Json now = lane();
  EXPECT_EQ(now.at("frames_dropped"), 0) << now.dump();
  EXPECT_EQ(now.at("source"), "camera " + network.camera_address() + " (software trigger)");

  // The camera goes away (kill -9) and comes back: a trigger it does not answer is refused (not
  // lost silently), the lane says it is not connected, reconnects, counts it.
  camera->stop(SIGKILL);
  EXPECT_EQ(trigger(), 409);
  ASSERT_TRUE(wait_until([&] { return !lane().value("source_connected", true); }, 30s)) << log();
  EXPECT_EQ(trigger(), 409);
  camera = network.start_camera(dir_ / "camera.log");
  ASSERT_TRUE(wait_until([&] { return lane().value("source_connected", false); }, 60s)) << log();
  EXPECT_GE(lane().at("source_reconnects").get<int>(), 1);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(triggered_frame_is_journaled(kFrames + i)) << log();
  }
  EXPECT_EQ(station->stop(SIGTERM), 0) << log();
}

TEST_F(CameraTest, AMissingCameraIsOneClearErrorAndTheOtherLanesKeepRunning) {
  std::filesystem::create_directories(dir_ / "in");
  write_text(dir_ / "station.toml",
             "[[lanes]]\nname = \"nocam\"\nmodel = \"" + (*data_ / "models/tile.pvm").string() +
                 "\"\n[lanes.camera]\nid = \"No-Such-Camera\"\ntrigger = \"software\"\n"
                 "[[lanes]]\nname = \"files\"\nmodel = \"" +
                 (*data_ / "models/tile.pvm").string() + "\"\n[lanes.folder]\ndir = \"" +
                 (dir_ / "in").string() + "\"\n");
  auto station = start_station({"--config", (dir_ / "station.toml").string()});
  const auto image = *data_ / "data/tile/test/good";
  for (const auto& entry : std::filesystem::directory_iterator(image)) {
    std::filesystem::copy_file(entry.path(), dir_ / "in" / entry.path().filename());
  }
  ASSERT_TRUE(wait_until([&] { return journal(dir_ / "state", "files").size() == 1; }, 30s))
      << log();
  const Json missing = lane("nocam");
  EXPECT_FALSE(missing.at("source_connected").get<bool>());
  EXPECT_NE(missing.at("source_error").get<std::string>().find("No-Such-Camera not found"),
            std::string::npos)
      << missing.dump();
  EXPECT_EQ(trigger("nocam"), 409);
  EXPECT_EQ(trigger("files"), 409);  // a folder takes no trigger
  EXPECT_EQ(trigger("nolane"), 404);
  // One line in the log for the missing camera, not one per attempt.
  const std::string text = log();
  std::size_t lines = 0;
  for (std::size_t at = text.find("No-Such-Camera not found"); at != std::string::npos;
       at = text.find("No-Such-Camera not found", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << text;
  EXPECT_EQ(station->stop(SIGTERM), 0) << log();
}

// Aravis's in-process fake camera free-runs (it takes no triggers: those are tested above with the
// GigE Vision one); the lane keeps up with what it can and counts nothing twice.
TEST_F(CameraTest, AravisInProcessFakeCameraFreeRunning) {
  auto station = start_station({"--camera", "Fake_1", "--pixel-format", "Mono8"});
  ASSERT_TRUE(wait_until([&] { return journal(dir_ / "state").size() >= 5; }, 30s)) << log();
  const auto records = journal(dir_ / "state");
  EXPECT_EQ(frame_names(records).size(), records.size());
  EXPECT_EQ(station->stop(SIGTERM), 0) << log();
  // Drained: what was recorded stays recorded, no frame twice.
  EXPECT_EQ(frame_names(journal(dir_ / "state")).size(), journal(dir_ / "state").size());
}

}  // namespace
}  // namespace pv::testing
