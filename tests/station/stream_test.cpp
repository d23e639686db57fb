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
  const auto images = this->images();
  std::filesystem::create_directories(dir_ / "frames");
  for (std::size_t i = 0; i < images.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "frame-%03zu.png", i);
    cv::imwrite((dir_ / "frames" / name).string(), images[i]);
  }
  const int rtsp_port = closed_port();
  const auto start_server = [&] {
    auto server = std::make_unique<Process>(
        std::vector<std::string>{
            "/usr/bin/python3", PATCHVEC_SOURCE_DIR "/tests/station/rtsp_server.py",
            std::to_string(rtsp_port), (dir_ / "frames" / "frame-%03d.png").string()},
        dir_ / "rtsp.log");
    EXPECT_TRUE(wait_until([&] { return port_open(rtsp_port); }, 30s))
        << read_text(dir_ / "rtsp.log");
    return server;
  };
  auto server = start_server();
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
  const auto number = [](const Json& record) {
    return std::stoi(record.at("name").get<std::string>().substr(6, 6));  // frame-000031.png
  };
  const double step = (number(records[11]) - number(records[1])) / 10.0;
  EXPECT_NEAR(step, 2.5, 0.21) << records[1].dump() << "\n" << records[11].dump();
  EXPECT_TRUE(lane().at("source_connected").get<bool>());

  server->stop(SIGKILL);
  ASSERT_TRUE(wait_until([&] { return !lane().value("source_connected", true); }, 30s)) << log();
  const std::size_t before = journal(dir_ / "state").size();
  server = start_server();
  ASSERT_TRUE(wait_until([&] { return journal(dir_ / "state").size() >= before + 4; }, 60s))
      << log();
  const Json now = lane();
  EXPECT_TRUE(now.at("source_connected").get<bool>()) << now.dump();
  EXPECT_GE(now.at("source_reconnects").get<int>(), 1) << now.dump();
  EXPECT_EQ(station->stop(SIGTERM), 0) << log();
}

}  // namespace
}  // namespace pv::testing
