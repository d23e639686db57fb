// A station's stream lanes end to end: the real binary reading a video file made from synthetic
// images (OpenCV's writer), and an RTSP stream from GStreamer's RTSP server on 127.0.0.1 that goes
// away and comes back. Every wait is bounded.
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "station/station_testing.h"

namespace pv::testing {
namespace {

using Json = nlohmann::json;

class StreamTest : public LiveStationTest {
 protected:
  // The suite's synthetic images, 128 x 128.
  std::vector<cv::Mat> images() const {
    std::vector<cv::Mat> out;
    for (const auto& entry :
         std::filesystem::recursive_directory_iterator(*data_ / "data/tile/train")) {
      if (entry.path().extension() == ".png") out.push_back(cv::imread(entry.path().string()));
    }
    return out;
  }
  // The images as numbered PNG files in <dir>/frames, what the test servers stream.
  void write_frames() const {
    const auto all = images();
    std::filesystem::create_directories(dir_ / "frames");
    for (std::size_t i = 0; i < all.size(); ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "frame-%03zu.png", i);
      cv::imwrite((dir_ / "frames" / name).string(), all[i]);
    }
  }
  // A test server (a script of tests/station/) on `port`, serving <dir>/frames.
  std::unique_ptr<Process> start_server(const std::string& script, int port,
                                        const std::string& pattern) const {
    auto server = std::make_unique<Process>(
        std::vector<std::string>{"/usr/bin/python3",
                                 std::string(PATCHVEC_SOURCE_DIR) + "/tests/station/" + script,
                                 std::to_string(port), (dir_ / "frames" / pattern).string()},
        dir_ / (script + ".log"));
    EXPECT_TRUE(wait_until([&] { return port_open(port); }, 30s))
        << read_text(dir_ / (script + ".log"));
    return server;
  }
  // The frame numbers in the records' names (frame-000031.png) advance by this much on average
  // from record `from` to record `to`.
  static double step(const std::vector<Json>& records, std::size_t from, std::size_t to) {
    const auto number = [](const Json& record) {
      return std::stoi(record.at("name").get<std::string>().substr(6, 6));
    };
    return (number(records[to]) - number(records[from])) / static_cast<double>(to - from);
  }
};

TEST_F(StreamTest, AVideoFileGivesEveryNthFrameOnceToItsEnd) {
  const auto images = this->images();
  ASSERT_GE(images.size(), 4u);
  const auto video = dir_ / "line.avi";
  {
    cv::VideoWriter writer(video.string(), cv::CAP_FFMPEG,
                           cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 10, images[0].size());
    ASSERT_TRUE(writer.isOpened());
    for (int i = 0; i < 20; ++i) writer.write(images[static_cast<std::size_t>(i) % images.size()]);
  }
  // A file is read no faster than the lane inspects: none dropped, whatever the queue.
  auto station = start_station({"--stream", video.string(), "--every-nth", "5"});
  ASSERT_TRUE(wait_until([&] { return journal(dir_ / "state").size() == 4; }, 60s)) << log();
  ASSERT_TRUE(wait_until([&] { return !lane().value("source_connected", true); }, 30s)) << log();
  std::this_thread::sleep_for(300ms);
  const auto records = journal(dir_ / "state");
  ASSERT_EQ(records.size(), 4u);
  const std::vector<std::string> expected = {"frame-000001.png", "frame-000006.png",
                                             "frame-000011.png", "frame-000016.png"};
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].at("name"), expected[i]);
    EXPECT_NE(records[i].at("verdict"), "error") << records[i].dump();
  }
  EXPECT_EQ(lane().at("frames_dropped"), 0);
  EXPECT_EQ(station->stop(SIGTERM), 0) << log();
}

TEST_F(StreamTest, AnRtspStreamIsReadAndReconnectedAfterTheServerComesBack) {
  write_frames();
  const int rtsp_port = closed_port();
  const auto start = [&] { return start_server("rtsp_server.py", rtsp_port, "frame-%03d.png"); };
  auto server = start();
  // 10 frames a second served, at most 4 taken.
  auto station = start_station(
      {"--stream", "rtsp://127.0.0.1:" + std::to_string(rtsp_port) + "/line", "--max-fps", "4"});
  ASSERT_TRUE(wait_until([&] { return journal(dir_ / "state").size() >= 12; }, 60s)) << log();
  const auto records = journal(dir_ / "state");
  for (const Json& record : records) {
    EXPECT_NE(record.at("verdict"), "error") << record.dump();
  }
  // At the configured rate by the stream's clock: 4 of its 10 frames a second, so the frame numbers
  // (in the names) advance by 2.5 on average.
  EXPECT_NEAR(step(records, 1, 11), 2.5, 0.21) << records[1].dump() << "\n" << records[11].dump();
  EXPECT_TRUE(lane().at("source_connected").get<bool>());

  server->stop(SIGKILL);
  ASSERT_TRUE(wait_until([&] { return !lane().value("source_connected", true); }, 30s)) << log();
  const std::size_t before = journal(dir_ / "state").size();
  server = start();
  ASSERT_TRUE(wait_until([&] { return journal(dir_ / "state").size() >= before + 4; }, 60s))
      << log();
  const Json now = lane();
  EXPECT_TRUE(now.at("source_connected").get<bool>()) << now.dump();
  EXPECT_GE(now.at("source_reconnects").get<int>(), 1) << now.dump();
  EXPECT_EQ(station->stop(SIGTERM), 0) << log();
}

TEST_F(StreamTest, AnHttpMjpegStreamWithoutTimestampsIsPacedByTheClock) {
  write_frames();
  const int port = closed_port();
  auto server = start_server("mjpeg_server.py", port, "*.png");
  // 10 frames a second, at most 5 taken: MJPEG carries no timestamps, so by this host's clock.
  auto station = start_station(
      {"--stream", "http://127.0.0.1:" + std::to_string(port) + "/stream.mjpg", "--max-fps", "5"});
  ASSERT_TRUE(wait_until([&] { return journal(dir_ / "state").size() >= 12; }, 60s)) << log();
  const auto records = journal(dir_ / "state");
  for (const Json& record : records) {
    EXPECT_NE(record.at("verdict"), "error") << record.dump();
  }
  EXPECT_NEAR(step(records, 1, 11), 2.0, 0.4);
  EXPECT_EQ(station->stop(SIGTERM), 0) << log();
}

}  // namespace
}  // namespace pv::testing
