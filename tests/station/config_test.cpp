// station.toml: every key known, every value checked, errors naming the file and the key.
#include <gtest/gtest.h>

#include <patchvec/error.h>
#include <patchvec/station.h>

#include "testing.h"

namespace pv::testing {
namespace {

class StationConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_text(dir_ / "hook.secret", "the secret\n");
    write_text(dir_ / "models/tile.pvm", "a model file");  // only its presence is checked here
    std::filesystem::create_directories(dir_ / "in/top");
  }

  std::filesystem::path write(const std::string& text) {
    write_text(dir_ / "station.toml", text);
    return dir_ / "station.toml";
  }

  // The one error `text` gets; it names the file.
  std::string error_of(const std::string& text) {
    try {
      load_station_config(write(text));
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("station.toml"), std::string::npos) << message;
      return message;
    }
    ADD_FAILURE() << "accepted:\n" << text;
    return "";
  }

  TempDir dir_;
  const std::string lane_ = R"(
[[lanes]]
name = "top"
model = "models/tile.pvm"
[lanes.folder]
dir = "in/top"
)";
};

TEST_F(StationConfigTest, ReadsACompleteFileWithPathsRelativeToIt) {
  const auto options = load_station_config(write(R"(
name = "line-1"
state = "state"
drain_seconds = 3
search = "shortlist"
[http]
host = "127.0.0.1"
port = 9090
threads = 2
max_batch = 2
[[lanes]]
name = "top"
model = "models/tile.pvm"
[lanes.folder]
dir = "in/top"
after = "keep"
max_file_mb = 4
[[lanes.mqtt]]
url = "mqtt://user:secret@127.0.0.1:1884/line1/top"
client_id = "top-camera"
[[lanes.mqtt]]
url = "mqtts://broker.example:8883/a/b"
[[lanes.webhook]]
url = "https://mes.example/results?token=t"
secret_file = "hook.secret"
timeout = 3
)"));
  EXPECT_EQ(options.name, "line-1");
  EXPECT_EQ(options.state_dir, dir_ / "state");
  EXPECT_EQ(options.drain_timeout, std::chrono::seconds(3));
  EXPECT_EQ(options.service.search, SearchMethod::kShortlist);
  EXPECT_EQ(options.service.port, 9090);
  EXPECT_EQ(options.service.threads, 2);
  EXPECT_EQ(options.service.batching.max_batch, 2);
  ASSERT_EQ(options.lanes.size(), 1u);
  const Lane& lane = options.lanes[0];
  EXPECT_EQ(lane.name, "top");
  EXPECT_EQ(lane.model, dir_ / "models/tile.pvm");
  EXPECT_EQ(lane.folder->dir, dir_ / "in/top");
  EXPECT_EQ(lane.folder->after, AfterInspection::kKeep);
  EXPECT_EQ(lane.folder->max_file_bytes, 4 << 20);
  ASSERT_EQ(lane.mqtt.size(), 2u);
  EXPECT_EQ(lane.mqtt[0].host, "127.0.0.1");
  EXPECT_EQ(lane.mqtt[0].port, 1884);
  EXPECT_EQ(lane.mqtt[0].topic, "line1/top");
  EXPECT_EQ(lane.mqtt[0].username, "user");
  EXPECT_EQ(lane.mqtt[0].password, "secret");
  EXPECT_EQ(lane.mqtt[0].client_id, "top-camera");
  EXPECT_FALSE(lane.mqtt[0].tls);
  EXPECT_TRUE(lane.mqtt[1].tls);
  EXPECT_EQ(lane.mqtt[1].port, 8883);
  ASSERT_EQ(lane.webhooks.size(), 1u);
  EXPECT_EQ(lane.webhooks[0].url, "https://mes.example/results?token=t");
  EXPECT_EQ(lane.webhooks[0].secret, "the secret");
  EXPECT_EQ(lane.webhooks[0].timeout_seconds, 3);
}

TEST_F(StationConfigTest, EachMistakeIsOneErrorNamingTheKey) {
  EXPECT_NE(error_of("colour = 1\n" + lane_).find("colour: unknown key"), std::string::npos);
  EXPECT_NE(error_of("search = \"fast\"\n" + lane_).find("search: unknown search 'fast'"),
            std::string::npos);
  EXPECT_NE(error_of(lane_ + "speed = 3\n").find("lanes[0].folder.speed: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of(lane_ + "[[lanes.mqtt]]\nurl = \"http://x/t\"\n")
                .find("lanes[0].mqtt[0].url: the scheme is not mqtt"),
            std::string::npos);
  EXPECT_NE(error_of(lane_ + "[[lanes.mqtt]]\nurl = \"mqtt://127.0.0.1:1883\"\n").find("no topic"),
            std::string::npos);
  EXPECT_NE(error_of(lane_ + "[[lanes.mqtt]]\nurl = \"mqtt://h/line/#\"\n").find("wildcards"),
            std::string::npos);
  EXPECT_NE(error_of(lane_ + "[[lanes.mqtt]]\nport = 1\n").find("lanes[0].mqtt[0].port"),
            std::string::npos);
  EXPECT_NE(error_of(lane_ + "[[lanes.webhook]]\nurl = \"ftp://h/x\"\n")
                .find("lanes[0].webhook[0].url: 'ftp://h/x' is not an http"),
            std::string::npos);
  EXPECT_NE(error_of(lane_ + "[[lanes.webhook]]\nurl = \"http://h/x\"\nsecret_file = \"none\"\n")
                .find("lanes[0].webhook[0].secret_file: "),
            std::string::npos);
  std::string missing_model = lane_;
  missing_model.replace(missing_model.find("models/tile.pvm"), 15, "models/wood.pvm");
  EXPECT_NE(error_of(missing_model).find("lanes[0].model: "), std::string::npos);
  std::string missing_folder = lane_;
  missing_folder.replace(missing_folder.find("in/top"), 6, "in/none");
  EXPECT_NE(error_of(missing_folder).find("lanes[0].folder.dir: "), std::string::npos);
  EXPECT_NE(error_of(lane_ + lane_).find("lanes[1].name: 'top' names another lane"),
            std::string::npos);
  std::string bad_after = lane_ + "after = \"shred\"\n";
  EXPECT_NE(error_of(bad_after).find("lanes[0].folder.after: is 'shred'"), std::string::npos);
  EXPECT_NE(error_of("[http]\nport = 70000\n" + lane_).find("http.port: is 70000"),
            std::string::npos);
  EXPECT_NE(error_of("name = 7\n" + lane_).find("name: must be a string"), std::string::npos);
  EXPECT_NE(error_of("name = \"Line 1\"\n" + lane_).find("name: 'Line 1'"), std::string::npos);
  EXPECT_NE(error_of("").find("lanes: missing"), std::string::npos);
  EXPECT_NE(error_of("[[lanes]]\nname = \"a\"\nmodel = \"models/tile.pvm\"\n")
                .find("lanes[0].folder: missing"),
            std::string::npos);
  // A syntax error: the line and column.
  EXPECT_NE(error_of("name = \"unterminated\n").find("station.toml:1:"), std::string::npos);
}

TEST_F(StationConfigTest, CameraAndStreamLanes) {
  write_text(dir_ / "line.mkv", "not parsed here");
  const auto options = load_station_config(write(R"(
[[lanes]]
name = "cam"
model = "models/tile.pvm"
journal_days = 3
[lanes.camera]
id = "Basler-40012345"
trigger = "Line1"
exposure_us = 1500
gain_db = 2.5
pixel_format = "BayerRG8"
buffers = 16
[[lanes]]
name = "video"
model = "models/tile.pvm"
[lanes.stream]
url = "line.mkv"
every_nth = 5
max_fps = 2.5
)"));
  ASSERT_EQ(options.lanes.size(), 2u);
  const Lane& cam = options.lanes[0];
  ASSERT_TRUE(cam.camera.has_value());
  EXPECT_FALSE(cam.folder.has_value());
  EXPECT_EQ(cam.journal_days, 3);
  EXPECT_EQ(cam.camera->id, "Basler-40012345");
  EXPECT_EQ(cam.camera->trigger, "Line1");
  EXPECT_EQ(cam.camera->exposure_us, 1500.0);
  EXPECT_EQ(cam.camera->gain_db, 2.5);
  EXPECT_EQ(cam.camera->pixel_format, "BayerRG8");
  EXPECT_EQ(cam.camera->buffers, 16);
  const Lane& video = options.lanes[1];
  ASSERT_TRUE(video.stream.has_value());
  EXPECT_EQ(video.stream->url, (dir_ / "line.mkv").string());  // relative to the file
  EXPECT_EQ(video.stream->every_nth, 5);
  EXPECT_EQ(video.stream->max_fps, 2.5);

  const std::string head = "[[lanes]]\nname = \"a\"\nmodel = \"models/tile.pvm\"\n";
  EXPECT_NE(error_of(head + "[lanes.camera]\nid = \"x\"\n[lanes.folder]\ndir = \"in/top\"\n")
                .find("lanes[0]: has 2 sources"),
            std::string::npos);
  EXPECT_NE(
      error_of(head + "[lanes.camera]\nid = \"x\"\ntrigger = \"whenever\"\n")
          .find("lanes[0].camera.trigger: 'whenever' is not free, software or a trigger line"),
      std::string::npos);
  EXPECT_NE(error_of(head + "[lanes.camera]\nid = \"x\"\npixel_format = \"YUV422\"\n")
                .find("lanes[0].camera.pixel_format: 'YUV422'"),
            std::string::npos);
  EXPECT_NE(error_of(head + "[lanes.camera]\nid = \"x\"\ntrigger_interval_ms = 100\n")
                .find("lanes[0].camera.trigger_interval_ms: only for trigger = \"software\""),
            std::string::npos);
  EXPECT_NE(error_of(head + "[lanes.camera]\nid = \"x\"\nexposure_us = \"fast\"\n")
                .find("lanes[0].camera.exposure_us: must be a number"),
            std::string::npos);
  EXPECT_NE(
      error_of(head + "[lanes.camera]\ntrigger = \"free\"\n").find("lanes[0].camera.id: missing"),
      std::string::npos);
  EXPECT_NE(error_of(head + "[lanes.stream]\nurl = \"ftp://h/v\"\n")
                .find("lanes[0].stream.url: 'ftp://h/v' is not an rtsp://"),
            std::string::npos);
  EXPECT_NE(error_of(head + "[lanes.stream]\nurl = \"none.mkv\"\n").find("is no video file"),
            std::string::npos);
  EXPECT_NE(error_of(head + "[lanes.stream]\nurl = \"rtsp://h/s\"\nevery_nth = 0\n")
                .find("lanes[0].stream.every_nth: is 0"),
            std::string::npos);
}

TEST(MqttUrlTest, TakesHostPortTopicAndCredentials) {
  const MqttSink plain = parse_mqtt_url("mqtt://127.0.0.1/line1", "--mqtt");
  EXPECT_EQ(plain.host, "127.0.0.1");
  EXPECT_EQ(plain.port, 1883);
  EXPECT_EQ(plain.topic, "line1");
  const MqttSink v6 = parse_mqtt_url("mqtts://u%40x:p%3Aw@[::1]:9000/a/b/c", "--mqtt");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 9000);
  EXPECT_EQ(v6.topic, "a/b/c");
  EXPECT_EQ(v6.username, "u@x");
  EXPECT_EQ(v6.password, "p:w");
  EXPECT_TRUE(v6.tls);
  for (const char* bad : {"", "mqtt://", "mqtt:///t", "tcp://h/t", "mqtt://h:99999/t",
                          "mqtt://h/t?x=1", "mqtt://h/a+b"}) {
    EXPECT_THROW(parse_mqtt_url(bad, "--mqtt"), Error) << bad;
  }
}

}  // namespace
}  // namespace pv::testing
