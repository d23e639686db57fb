// station.toml (toml++), the mqtt:// URLs (libcurl's URL parser) and the checks every station
// passes before it starts. docs/station.md has the whole file.
#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <set>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <toml++/toml.h>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/precision.h>
#include <patchvec/search_method.h>
#include <patchvec/station.h>
#include <patchvec/text.h>

namespace pv {
namespace {

constexpr std::int64_t kMaxConfigBytes = 1 << 20;

// A table's keys against the ones it may have: the first other one is the error.
void only_keys(const toml::table& table, const std::string& where,
               std::initializer_list<std::string_view> allowed, const std::string& file) {
  for (const auto& [key, value] : table) {
    if (std::find(allowed.begin(), allowed.end(), key.str()) == allowed.end()) {
      std::string list;
      for (const auto name : allowed) list += (list.empty() ? "" : ", ") + std::string(name);
      throw Error(file + ": " + where + printable(key.str(), 100) +
                  ": unknown key (known: " + list + ")");
    }
  }
}

class Reader {
 public:
  Reader(std::string file, std::filesystem::path base)
      : file_(std::move(file)), base_(std::move(base)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw Error(file_ + ": " + key + ": " + why);
  }

  std::optional<std::string> text(const toml::table& t, std::string_view name,
                                  const std::string& key) const {
    const toml::node* node = t.get(name);
    if (node == nullptr) return std::nullopt;
    if (!node->is_string()) fail(key, "must be a string");
    const std::string value = node->as_string()->get();
    if (value.size() > 4096) fail(key, "is longer than 4096 bytes");
    return value;
  }
  std::optional<std::int64_t> integer(const toml::table& t, std::string_view name,
                                      const std::string& key, std::int64_t min,
                                      std::int64_t max) const {
    const toml::node* node = t.get(name);
    if (node == nullptr) return std::nullopt;
    if (!node->is_integer()) fail(key, "must be an integer");
    const std::int64_t value = node->as_integer()->get();
    if (value < min || value > max) {
      fail(key, "is " + std::to_string(value) + ", not between " + std::to_string(min) + " and " +
                    std::to_string(max));
    }
    return value;
  }
  // A number, integer or not, within [min, max].
  std::optional<double> number(const toml::table& t, std::string_view name, const std::string& key,
                               double min, double max) const {
    const toml::node* node = t.get(name);
    if (node == nullptr) return std::nullopt;
    if (!node->is_number()) fail(key, "must be a number");
    const double value = node->is_integer() ? static_cast<double>(node->as_integer()->get())
                                            : node->as_floating_point()->get();
    if (!(value >= min && value <= max)) {
      fail(key, "is " + std::to_string(value) + ", not between " + std::to_string(min) + " and " +
                    std::to_string(max));
    }
    return value;
  }
  std::optional<bool> boolean(const toml::table& t, std::string_view name,
                              const std::string& key) const {
    const toml::node* node = t.get(name);
    if (node == nullptr) return std::nullopt;
    if (!node->is_boolean()) fail(key, "must be true or false");
    return node->as_boolean()->get();
  }
  // Relative paths are relative to the configuration file's folder.
  std::optional<std::filesystem::path> path(const toml::table& t, std::string_view name,
                                            const std::string& key) const {
    auto value = text(t, name, key);
    if (!value) return std::nullopt;
    if (value->empty()) fail(key, "is empty");
    std::filesystem::path p(*value);
    return p.is_absolute() ? p : base_ / p;
  }
  const toml::table* table(const toml::table& t, std::string_view name,
                           const std::string& key) const {
    const toml::node* node = t.get(name);
    if (node == nullptr) return nullptr;
    if (!node->is_table()) fail(key, "must be a table ([" + key + "])");
    return node->as_table();
  }
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::filesystem::path base_;
};

MqttSink read_mqtt(const toml::table& t, const std::string& key, const Reader& r) {
  only_keys(t, key + ".", {"url", "username", "password", "ca_file", "client_id", "keepalive"},
            r.file());
  const auto url = r.text(t, "url", key + ".url");
  if (!url) r.fail(key + ".url", "missing (mqtt://host:port/topic)");
  MqttSink sink;
  try {
    sink = parse_mqtt_url(*url, key + ".url");
  } catch (const Error& e) {
    throw Error(r.file() + ": " + e.what());
  }
  if (auto v = r.text(t, "username", key + ".username")) sink.username = *v;
  if (auto v = r.text(t, "password", key + ".password")) sink.password = *v;
  if (auto v = r.path(t, "ca_file", key + ".ca_file")) sink.ca_file = *v;
  if (auto v = r.text(t, "client_id", key + ".client_id")) sink.client_id = *v;
  if (auto v = r.integer(t, "keepalive", key + ".keepalive", 5, 3600)) {
    sink.keepalive_seconds = static_cast<int>(*v);
  }
  return sink;
}

WebhookSink read_webhook(const toml::table& t, const std::string& key, const Reader& r) {
  only_keys(t, key + ".", {"url", "secret", "secret_file", "timeout"}, r.file());
  WebhookSink sink;
  const auto url = r.text(t, "url", key + ".url");
  if (!url) r.fail(key + ".url", "missing (https://host/path)");
  sink.url = *url;
  try {
    check_webhook_url(sink.url, key + ".url");
  } catch (const Error& e) {
    throw Error(r.file() + ": " + e.what());
  }
  if (auto v = r.text(t, "secret", key + ".secret")) sink.secret = *v;
  if (auto v = r.path(t, "secret_file", key + ".secret_file")) {
    if (!sink.secret.empty()) r.fail(key + ".secret_file", "and secret: give one or the other");
    sink.secret = read_secret_file(*v, r.file() + ": " + key + ".secret_file");
  }
  if (auto v = r.integer(t, "timeout", key + ".timeout", 1, 600)) {
    sink.timeout_seconds = static_cast<int>(*v);
  }
  return sink;
}

FolderSource read_folder(const toml::table& t, const std::string& key, const Reader& r) {
  only_keys(t, key + ".", {"dir", "after", "max_file_mb"}, r.file());
  FolderSource folder;
  if (auto v = r.path(t, "dir", key + ".dir")) folder.dir = *v;
  if (auto v = r.text(t, "after", key + ".after")) {
    const auto after = parse_after_inspection(*v);
    if (!after) r.fail(key + ".after", "is '" + printable(*v, 100) + "', not move, keep or delete");
    folder.after = *after;
  }
  if (auto v = r.integer(t, "max_file_mb", key + ".max_file_mb", 1, 4096)) {
    folder.max_file_bytes = *v << 20;
  }
  return folder;
}

CameraSource read_camera(const toml::table& t, const std::string& key, const Reader& r) {
  only_keys(t, key + ".",
            {"id", "trigger", "trigger_interval_ms", "frame_rate", "exposure_us", "gain_db",
             "pixel_format", "buffers"},
            r.file());
  CameraSource camera;
  if (auto v = r.text(t, "id", key + ".id")) camera.id = *v;
  if (auto v = r.text(t, "trigger", key + ".trigger")) camera.trigger = *v;
  if (auto v = r.integer(t, "trigger_interval_ms", key + ".trigger_interval_ms", 0, 3600000)) {
    camera.trigger_interval_ms = static_cast<int>(*v);
  }
  if (auto v = r.number(t, "frame_rate", key + ".frame_rate", 0, 100000)) camera.frame_rate = *v;
  camera.exposure_us = r.number(t, "exposure_us", key + ".exposure_us", 0, 1e9);
  camera.gain_db = r.number(t, "gain_db", key + ".gain_db", -100, 100);
  if (auto v = r.text(t, "pixel_format", key + ".pixel_format")) camera.pixel_format = *v;
  if (auto v = r.integer(t, "buffers", key + ".buffers", 2, 256)) {
    camera.buffers = static_cast<int>(*v);
  }
  return camera;
}

StreamSource read_stream(const toml::table& t, const std::string& key, const Reader& r) {
  only_keys(t, key + ".", {"url", "every_nth", "max_fps", "queue"}, r.file());
  StreamSource stream;
  if (auto v = r.text(t, "url", key + ".url")) {
    // A file's path is relative to the configuration file, as every path is.
    stream.url = *v;
    if (stream.is_file()) stream.url = r.path(t, "url", key + ".url")->string();
  }
  if (auto v = r.integer(t, "every_nth", key + ".every_nth", 1, 1000000)) {
    stream.every_nth = static_cast<int>(*v);
  }
  if (auto v = r.number(t, "max_fps", key + ".max_fps", 0, 10000)) stream.max_fps = *v;
  if (auto v = r.integer(t, "queue", key + ".queue", 1, 256)) stream.queue = static_cast<int>(*v);
  return stream;
}

Lane read_lane(const toml::table& t, const std::string& key, const Reader& r) {
  only_keys(t, key + ".",
            {"name", "model", "journal_days", "folder", "camera", "stream", "mqtt", "webhook",
             "modbus", "archive"},
            r.file());
  Lane lane;
  if (auto v = r.text(t, "name", key + ".name")) lane.name = *v;
  if (auto v = r.path(t, "model", key + ".model")) lane.model = *v;
  if (auto v = r.integer(t, "journal_days", key + ".journal_days", 1, 36500)) {
    lane.journal_days = static_cast<int>(*v);
  }
  const toml::table* folder = r.table(t, "folder", key + ".folder");
  const toml::table* camera = r.table(t, "camera", key + ".camera");
  const toml::table* stream = r.table(t, "stream", key + ".stream");
  const int sources = (folder != nullptr) + (camera != nullptr) + (stream != nullptr);
  if (sources == 0) {
    r.fail(key + ".folder", "missing: a lane needs a source ([" + key + ".folder] dir = ..., [" +
                                key + ".camera] id = ... or [" + key + ".stream] url = ...)");
  }
  if (sources > 1) {
    r.fail(key, "has " + std::to_string(sources) +
                    " sources: one of [folder], [camera] or [stream] per lane");
  }
  if (folder != nullptr) lane.folder = read_folder(*folder, key + ".folder", r);
  if (camera != nullptr) lane.camera = read_camera(*camera, key + ".camera", r);
  if (stream != nullptr) lane.stream = read_stream(*stream, key + ".stream", r);
  if (const toml::node* sinks = t.get("mqtt")) {
    const toml::array* list = sinks->as_array();
    if (list == nullptr) r.fail(key + ".mqtt", "must be an array of tables ([[" + key + ".mqtt]])");
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string sink_key = key + ".mqtt[" + std::to_string(i) + "]";
      const toml::table* sink = (*list)[i].as_table();
      if (sink == nullptr) r.fail(sink_key, "must be a table");
      lane.mqtt.push_back(read_mqtt(*sink, sink_key, r));
    }
  }
  if (const toml::table* modbus = r.table(t, "modbus", key + ".modbus")) {
    only_keys(*modbus, key + ".modbus.", {"address", "port", "handshake", "max_clients"}, r.file());
    ModbusSink sink;
    if (auto v = r.text(*modbus, "address", key + ".modbus.address")) sink.address = *v;
    if (auto v = r.integer(*modbus, "port", key + ".modbus.port", 0, 65535)) {
      sink.port = static_cast<int>(*v);
    }
    if (auto v = r.boolean(*modbus, "handshake", key + ".modbus.handshake")) sink.handshake = *v;
    if (auto v = r.integer(*modbus, "max_clients", key + ".modbus.max_clients", 1, 64)) {
      sink.max_clients = static_cast<int>(*v);
    }
    lane.modbus = sink;
  }
  if (const toml::table* archive = r.table(t, "archive", key + ".archive")) {
    only_keys(*archive, key + ".archive.", {"dir", "keep", "max_age_days", "max_gb"}, r.file());
    EvidenceArchive kept;
    if (auto v = r.path(*archive, "dir", key + ".archive.dir")) kept.dir = *v;
    if (auto v = r.text(*archive, "keep", key + ".archive.keep")) {
      if (*v != "all" && *v != "anomalous") {
        r.fail(key + ".archive.keep", "is '" + printable(*v, 100) + "', not all or anomalous");
      }
      kept.all = *v == "all";
    }
    if (auto v = r.integer(*archive, "max_age_days", key + ".archive.max_age_days", 1, 36500)) {
      kept.max_age_days = static_cast<int>(*v);
    }
    if (auto v = r.integer(*archive, "max_gb", key + ".archive.max_gb", 1, 1 << 20)) {
      kept.max_bytes = *v << 30;
    }
    lane.archive = kept;
  }
  if (const toml::node* sinks = t.get("webhook")) {
    const toml::array* list = sinks->as_array();
    if (list == nullptr) {
      r.fail(key + ".webhook", "must be an array of tables ([[" + key + ".webhook]])");
    }
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string sink_key = key + ".webhook[" + std::to_string(i) + "]";
      const toml::table* sink = (*list)[i].as_table();
      if (sink == nullptr) r.fail(sink_key, "must be a table");
      lane.webhooks.push_back(read_webhook(*sink, sink_key, r));
    }
  }
  return lane;
}

void read_http(const toml::table& t, ServiceOptions& s, const Reader& r) {
  only_keys(t, "http.",
            {"host", "port", "auth_tokens", "insecure", "allowed_hosts", "threads", "max_batch"},
            r.file());
  if (auto v = r.text(t, "host", "http.host")) s.host = *v;
  if (auto v = r.integer(t, "port", "http.port", 0, 65535)) s.port = static_cast<int>(*v);
  if (auto v = r.path(t, "auth_tokens", "http.auth_tokens")) s.auth_tokens = *v;
  if (auto v = r.boolean(t, "insecure", "http.insecure")) s.insecure = *v;
  if (auto v = r.integer(t, "threads", "http.threads", 0, 1024)) s.threads = static_cast<int>(*v);
  if (auto v = r.integer(t, "max_batch", "http.max_batch", 1, 64)) {
    s.batching.max_batch = static_cast<int>(*v);
  }
  if (const toml::node* hosts = t.get("allowed_hosts")) {
    const toml::array* list = hosts->as_array();
    if (list == nullptr) r.fail("http.allowed_hosts", "must be an array of strings");
    for (const auto& host : *list) {
      if (!host.is_string()) r.fail("http.allowed_hosts", "must be an array of strings");
      s.allowed_hosts.push_back(host.as_string()->get());
    }
  }
}

bool valid_name(const std::string& name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](unsigned char c) {
           return std::islower(c) != 0 || std::isdigit(c) != 0 || c == '-' || c == '_';
         });
}

// Exactly one source, and what it names exists or can be looked for.
void check_source(const Lane& lane, const std::string& key) {
  const int sources = lane.folder.has_value() + lane.camera.has_value() + lane.stream.has_value();
  if (sources != 1) {
    throw Error(key + ": has " + std::to_string(sources) +
                " sources: one of a folder, a camera or a stream per lane");
  }
  std::error_code error;
  if (lane.folder) {
    if (lane.folder->dir.empty()) throw Error(key + ".folder.dir: missing");
    if (!std::filesystem::is_directory(lane.folder->dir, error)) {
      throw Error(key + ".folder.dir: " + lane.folder->dir.string() + " is not a folder");
    }
    if (lane.folder->max_file_bytes <= 0) {
      throw Error(key + ".folder.max_file_mb: must be positive");
    }
  }
  if (lane.camera) {
    const CameraSource& camera = *lane.camera;
    if (camera.id.empty()) throw Error(key + ".camera.id: missing (arv-tool-0.8 lists them)");
    const bool line = !camera.trigger.empty() &&
                      std::all_of(camera.trigger.begin(), camera.trigger.end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
                      });
    if (camera.trigger != "free" && camera.trigger != "software" &&
        (!line || !std::isupper(static_cast<unsigned char>(camera.trigger[0])))) {
      throw Error(key + ".camera.trigger: '" + printable(camera.trigger, 100) +
                  "' is not free, software or a trigger line (Line0, Line1, ...)");
    }
    if (camera.trigger_interval_ms > 0 && camera.trigger != "software") {
      throw Error(key + ".camera.trigger_interval_ms: only for trigger = \"software\"");
    }
    if (camera.frame_rate > 0 && camera.trigger != "free") {
      throw Error(key + ".camera.frame_rate: only for trigger = \"free\"");
    }
    static constexpr std::array kFormats = {"Mono8",    "Mono16",   "RGB8",     "BGR8",
                                            "BayerRG8", "BayerGR8", "BayerGB8", "BayerBG8"};
    if (!camera.pixel_format.empty() &&
        std::find(kFormats.begin(), kFormats.end(), camera.pixel_format) == kFormats.end()) {
      throw Error(key + ".camera.pixel_format: '" + printable(camera.pixel_format, 100) +
                  "' is not Mono8, Mono16, RGB8, BGR8, BayerRG8, BayerGR8, BayerGB8 or BayerBG8");
    }
    if (camera.buffers < 2) throw Error(key + ".camera.buffers: at least 2");
  }
  if (lane.stream) {
    const StreamSource& stream = *lane.stream;
    if (stream.url.empty()) throw Error(key + ".stream.url: missing");
    if (stream.is_file()) {
      if (!std::filesystem::is_regular_file(stream.url, error)) {
        throw Error(key + ".stream.url: " + stream.url + " is no video file");
      }
    } else {
      const std::string scheme = stream.url.substr(0, stream.url.find("://"));
      if (scheme != "rtsp" && scheme != "http" && scheme != "https") {
        throw Error(key + ".stream.url: '" + printable(stream.url, 200) +
                    "' is not an rtsp://, http:// or https:// URL or a file");
      }
    }
    if (stream.every_nth < 1) throw Error(key + ".stream.every_nth: at least 1");
    if (stream.queue < 1) throw Error(key + ".stream.queue: at least 1");
  }
}

}  // namespace

std::string read_secret_file(const std::filesystem::path& file, const std::string& what) {
  std::vector<std::byte> bytes;
  try {
    bytes = read_file(file, 4096);
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
  std::string secret(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) throw Error(what + ": " + file.string() + " is empty");
  return secret;
}

void check_webhook_url(const std::string& url, const std::string& what) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> parsed(curl_url(), curl_url_cleanup);
  char* scheme = nullptr;
  char* host = nullptr;
  const bool ok = parsed &&
                  curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
                  curl_url_get(parsed.get(), CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
                  curl_url_get(parsed.get(), CURLUPART_HOST, &host, 0) == CURLUE_OK;
  const std::string scheme_text = scheme != nullptr ? scheme : "";
  curl_free(scheme);
  curl_free(host);
  if (!ok || (scheme_text != "http" && scheme_text != "https")) {
    throw Error(what + ": '" + printable(url, 200) + "' is not an http:// or https:// URL");
  }
}

std::string_view after_inspection_name(AfterInspection after) {
  switch (after) {
    case AfterInspection::kMove:
      return "move";
    case AfterInspection::kKeep:
      return "keep";
    case AfterInspection::kDelete:
      return "delete";
  }
  return "move";
}

std::optional<AfterInspection> parse_after_inspection(std::string_view name) {
  for (const auto after :
       {AfterInspection::kMove, AfterInspection::kKeep, AfterInspection::kDelete}) {
    if (name == after_inspection_name(after)) return after;
  }
  return std::nullopt;
}

MqttSink parse_mqtt_url(const std::string& url, const std::string& what) {
  const auto fail = [&](const std::string& why) -> Error {
    return Error(what + ": " + why + " in '" + printable(url, 200) +
                 "' (mqtt://[user[:password]@]host[:port]/topic)");
  };
  // '#' would otherwise start a URL's fragment.
  if (url.find_first_of("#+") != std::string::npos) {
    throw fail("a topic to publish to has no wildcards (# or +)");
  }
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> parsed(curl_url(), curl_url_cleanup);
  if (!parsed || curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME) !=
                     CURLUE_OK) {
    throw fail("not a URL");
  }
  const auto part = [&](CURLUPart which) -> std::string {
    char* value = nullptr;
    if (curl_url_get(parsed.get(), which, &value, CURLU_URLDECODE) != CURLUE_OK) return "";
    std::string out = value;
    curl_free(value);
    return out;
  };
  MqttSink sink;
  sink.url = url;
  const std::string scheme = part(CURLUPART_SCHEME);
  if (scheme != "mqtt" && scheme != "mqtts") throw fail("the scheme is not mqtt or mqtts");
  sink.tls = scheme == "mqtts";
  sink.host = part(CURLUPART_HOST);
  if (sink.host.empty()) throw fail("no host");
  if (sink.host.front() == '[' && sink.host.back() == ']') {
    sink.host = sink.host.substr(1, sink.host.size() - 2);
  }
  const std::string port = part(CURLUPART_PORT);
  sink.port = port.empty() ? (sink.tls ? 8883 : 1883) : std::stoi(port);
  std::string topic = part(CURLUPART_PATH);
  if (!topic.empty() && topic.front() == '/') topic.erase(0, 1);
  if (topic.empty()) throw fail("no topic");
  if (topic.find('\0') != std::string::npos) throw fail("a NUL in the topic");
  if (!part(CURLUPART_QUERY).empty() || !part(CURLUPART_FRAGMENT).empty()) {
    throw fail("a query or fragment");
  }
  sink.topic = topic;
  sink.username = part(CURLUPART_USER);
  sink.password = part(CURLUPART_PASSWORD);
  return sink;
}

StationOptions load_station_config(const std::filesystem::path& file) {
  const auto bytes = read_file(file, kMaxConfigBytes);
  return parse_station_config(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), file);
}

StationOptions parse_station_config(std::string_view text, const std::filesystem::path& file) {
  const std::string name = file.string();
  if (text.size() > static_cast<std::size_t>(kMaxConfigBytes)) {
    throw Error(name + ": larger than " + std::to_string(kMaxConfigBytes) + " bytes");
  }
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    throw Error(name + ":" + std::to_string(e.source().begin.line) + ":" +
                std::to_string(e.source().begin.column) + ": " + printable(e.description(), 300));
  }
  const Reader r(name,
                 file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path());
  only_keys(root, "",
            {"name", "state", "drain_seconds", "precision", "search", "store", "http", "lanes"},
            name);
  StationOptions options;
  if (auto v = r.text(root, "name", "name")) options.name = *v;
  if (auto v = r.path(root, "state", "state")) options.state_dir = *v;
  if (auto v = r.text(root, "precision", "precision")) {
    options.service.precision = parse_precision(*v, name + ": precision");
  }
  if (auto v = r.text(root, "search", "search")) {
    options.service.search = parse_search_method(*v, name + ": search");
  }
  if (auto v = r.integer(root, "drain_seconds", "drain_seconds", 0, 3600)) {
    options.drain_timeout = std::chrono::seconds(*v);
  }
  if (const toml::table* store = r.table(root, "store", "store")) {
    only_keys(*store, "store.", {"db", "file"}, name);
    if (auto v = r.text(*store, "db", "store.db")) options.service.store.db = *v;
    if (auto v = r.path(*store, "file", "store.file")) options.service.store.file = *v;
  }
  if (const toml::table* http = r.table(root, "http", "http")) read_http(*http, options.service, r);
  const toml::node* lanes = root.get("lanes");
  if (lanes == nullptr || lanes->as_array() == nullptr) {
    r.fail("lanes", "missing: at least one [[lanes]] with a model and a source");
  }
  const toml::array& list = *lanes->as_array();
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string key = "lanes[" + std::to_string(i) + "]";
    const toml::table* lane = list[i].as_table();
    if (lane == nullptr) r.fail(key, "must be a table ([[lanes]])");
    options.lanes.push_back(read_lane(*lane, key, r));
  }
  try {
    check_station(options);
  } catch (const Error& e) {
    throw Error(name + ": " + e.what());
  }
  return options;
}

void check_station(const StationOptions& options) {
  if (options.lanes.empty()) throw Error("no lanes: a station needs at least one");
  if (!options.name.empty() && !valid_name(options.name)) {
    throw Error("name: '" + printable(options.name, 100) +
                "' is not 1-64 of a-z, 0-9, '-' and '_'");
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < options.lanes.size(); ++i) {
    const Lane& lane = options.lanes[i];
    const std::string key = "lanes[" + std::to_string(i) + "]";
    if (!valid_name(lane.name)) {
      throw Error(key + ".name: '" + printable(lane.name, 100) +
                  "' is not 1-64 of a-z, 0-9, '-' and '_'");
    }
    if (!names.insert(lane.name).second) {
      throw Error(key + ".name: '" + lane.name + "' names another lane too");
    }
    std::error_code error;
    if (lane.model.empty()) throw Error(key + ".model: missing (a .pvm file)");
    if (!std::filesystem::is_regular_file(lane.model, error)) {
      throw Error(key + ".model: " + lane.model.string() + " is not a model file");
    }
    check_source(lane, key);
    for (std::size_t j = 0; j < lane.mqtt.size(); ++j) {
      const MqttSink& sink = lane.mqtt[j];
      const std::string sink_key = key + ".mqtt[" + std::to_string(j) + "]";
      if (sink.host.empty() || sink.topic.empty()) throw Error(sink_key + ".url: missing");
      if (sink.port <= 0 || sink.port > 65535) throw Error(sink_key + ".url: a bad port");
      if (!sink.ca_file.empty() && !std::filesystem::is_regular_file(sink.ca_file, error)) {
        throw Error(sink_key + ".ca_file: " + sink.ca_file.string() + " is not a file");
      }
    }
    if (lane.archive && lane.archive->dir.empty()) throw Error(key + ".archive.dir: missing");
    if (lane.modbus) {
      in_addr address{};
      if (::inet_pton(AF_INET, lane.modbus->address.c_str(), &address) != 1) {
        throw Error(key + ".modbus.address: '" + printable(lane.modbus->address, 100) +
                    "' is not an IPv4 address");
      }
      if (lane.modbus->port < 0 || lane.modbus->port > 65535) {
        throw Error(key + ".modbus.port: " + std::to_string(lane.modbus->port) + " is no port");
      }
    }
    for (std::size_t j = 0; j < lane.webhooks.size(); ++j) {
      const std::string sink_key = key + ".webhook[" + std::to_string(j) + "]";
      check_webhook_url(lane.webhooks[j].url, sink_key + ".url");
      if (lane.webhooks[j].timeout_seconds <= 0)
        throw Error(sink_key + ".timeout: must be positive");
    }
  }
}

}  // namespace pv
