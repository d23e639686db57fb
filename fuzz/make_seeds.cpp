// Seed corpora for the fuzz targets, generated at build time (nothing binary is committed):
//   fuzz_seeds OUT   writes OUT/{image,safetensors,model_file,store_file,http,checkpoint,
//                    pickle,station}/<seed>
// Each seed is a small valid input, so that the fuzzer starts from the formats' real structure.
#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <zlib.h>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/model.h>
#include <patchvec/store.h>

#include "nn/safetensors.h"
#include "nn/torch_checkpoint.h"
#include "patchcore/model_file.h"
#include "patchcore/model_info.h"

namespace {

namespace fs = std::filesystem;

void write(const fs::path& path, std::span<const std::byte> bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

void write(const fs::path& path, const std::string& text) {
  write(path, std::as_bytes(std::span(text.data(), text.size())));
}

void write(const fs::path& path, const std::vector<unsigned char>& bytes) {
  write(path, std::as_bytes(std::span(bytes.data(), bytes.size())));
}

std::string text_of(const std::vector<unsigned char>& bytes) {
  return {bytes.begin(), bytes.end()};
}

cv::Mat pattern(int width, int height, int type) {
  cv::Mat image(height, width, type);
  cv::randu(image, cv::Scalar::all(0),
            cv::Scalar::all(type == CV_16UC3 || type == CV_16UC1 ? 65535 : 255));
  cv::GaussianBlur(image, image, {5, 5}, 1.5);
  return image;
}

std::vector<unsigned char> encoded(const char* extension, const cv::Mat& image,
                                   const std::vector<int>& parameters = {}) {
  std::vector<unsigned char> bytes;
  cv::imencode(extension, image, bytes, parameters);
  return bytes;
}

void image_seeds(const fs::path& out) {
  write(out / "rgb.png", encoded(".png", pattern(24, 16, CV_8UC3)));
  write(out / "grey.png", encoded(".png", pattern(17, 9, CV_8UC1)));
  write(out / "rgb16.png", encoded(".png", pattern(12, 12, CV_16UC3)));
  write(out / "rgba.png", encoded(".png", pattern(8, 8, CV_8UC4)));
  write(out / "baseline.jpg", encoded(".jpg", pattern(32, 24, CV_8UC3)));
  write(out / "grey.jpg", encoded(".jpg", pattern(16, 16, CV_8UC1)));
  write(out / "progressive.jpg",
        encoded(".jpg", pattern(40, 8, CV_8UC3), {cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
  write(out / "rgb.bmp", encoded(".bmp", pattern(10, 7, CV_8UC3)));
  write(out / "grey.bmp", encoded(".bmp", pattern(9, 5, CV_8UC1)));
}

// Images for the way to the network: the first byte picks the preprocessing (preprocess_fuzz).
void preprocess_seeds(const fs::path& out) {
  const auto with_mode = [](char mode, const std::vector<unsigned char>& image) {
    return std::string(1, mode) + text_of(image);
  };
  write(out / "square", with_mode(0, encoded(".png", pattern(40, 40, CV_8UC3))));
  write(out / "tall", with_mode(0, encoded(".png", pattern(1, 3000, CV_8UC1))));
  write(out / "wide", with_mode(0, encoded(".png", pattern(3000, 1, CV_8UC1))));
  write(out / "tiled", with_mode(1, encoded(".png", pattern(80, 64, CV_8UC3))));
  write(out / "tiled_tall", with_mode(65, encoded(".png", pattern(33, 2000, CV_8UC1))));
}

void safetensors_seeds(const fs::path& out) {
  const std::vector<float> weight(12, 0.5f), three = {0.1f, 0.2f, 0.3f}, ones(3, 1.0f);
  write(out / "module.safetensors", pv::nn::encode_safetensors({{"0.weight", {{3, 4}, weight}},
                                                                {"0.bias", {{3}, three}},
                                                                {"1.weight", {{3}, ones}},
                                                                {"1.bias", {{3}, three}},
                                                                {"1.running_mean", {{3}, three}},
                                                                {"1.running_var", {{3}, ones}}}));
  write(out / "one.safetensors", pv::nn::encode_safetensors({{"0.bias", {{3}, three}}}));
}

// A model of 2 x 2 patches of 8 values, a bank of 6 with 3 neighbours each: tiny, and valid.
void model_file_seeds(const fs::path& out, const fs::path& scratch) {
  pv::ModelInfo info;
  info.category = "tile";
  info.created = "2026-11-29T00:00:00Z";
  info.backbone = {.backbone = "resnet18", .weights_sha256 = std::string(64, 'a')};
  info.options.embedder.image_size = 16;
  info.options.embedder.crop_size = 14;
  info.grid = {2, 2, 8};
  info.bank_size = 6;
  info.train_images = 6;
  info.train_patches = 24;
  info.options.coreset_ratio = 0.25;
  info.options.num_neighbors = 3;
  info.options.sigma = 1;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  at::Tensor bank = at::empty({6, 8});
  for (std::int64_t i = 0; i < bank.numel(); ++i) bank.data_ptr<float>()[i] = normal(rng);
  at::Tensor neighbors = at::empty({6, 3}, at::kLong);
  for (std::int64_t i = 0; i < 6; ++i) {
    for (std::int64_t k = 0; k < 3; ++k) neighbors[i][k] = (i + k) % 6;
  }
  for (const bool thresholds : {false, true}) {
    if (thresholds) {
      info.thresholds = pv::Thresholds{.image = 1, .pixel = 1, .source = "seed"};
      // And the shortlist search's check, as a large category's training records it.
      info.shortlist_check = pv::ShortlistCheck{
          .images = 2, .patches = 8, .recall_at_1 = 0.875, .max_relative_error = 0.01};
    }
    const fs::path file = scratch / "seed.pvm";
    pv::patchcore::write_model_file(
        file,
        {.metadata = pv::patchcore::to_json(info), .bank = bank, .bank_neighbors = neighbors});
    const auto bytes = pv::read_file(file);
    // Without the checksum: the target appends it.
    write(out / (thresholds ? "thresholds.pvm" : "plain.pvm"),
          std::span(bytes).first(bytes.size() - 64));
  }
  // A reduced-precision model: the bank in BF16, int8's activation ranges, an agreement.
  info.backbone.precision = info.options.precision = pv::Precision::kInt8;
  info.backbone.activation_min = {-2.0f, 0.0f, 0.0f};
  info.backbone.activation_max = {2.5f, 4.0f, 3.0f};
  info.agreement = pv::PrecisionAgreement{.images = 5,
                                          .max_relative_difference = 0.02,
                                          .rank_correlation = 0.99,
                                          .auroc = 0.9,
                                          .auroc_fp32 = 0.91};
  const fs::path file = scratch / "seed.pvm";
  pv::patchcore::write_model_file(
      file, {.metadata = pv::patchcore::to_json(info), .bank = bank.to(at::kBFloat16)});
  const auto bytes = pv::read_file(file);
  write(out / "int8.pvm", std::span(bytes).first(bytes.size() - 64));
}

void store_file_seeds(const fs::path& out, const fs::path& scratch) {
  const fs::path file = scratch / "seed.pvs";
  fs::remove(file);
  {
    const auto store = pv::open_embedded_store(file);
    store->replace_dataset("tile",
                           std::vector<pv::StoredImage>{
                               {.path = "a.png", .category = "tile", .embedding = {1, 0, 0}},
                               {.path = "b.png", .category = "tile", .embedding = {0, 1, 0}}});
    const auto id = store->add_image({.path = "c.png",
                                      .category = "tile",
                                      .split = pv::Split::kAdded,
                                      .anomalous = true,
                                      .defect = "crack",
                                      .embedding = {0, 0, 1}});
    store->add_report({.path = "q.png",
                       .category = "tile",
                       .score = 2,
                       .threshold = 1,
                       .matches = store->nearest(std::vector<float>{0, 0, 1}, 1)});
    (void)id;
  }
  const auto bytes = pv::read_file(file);
  write(out / "store.pvs", std::span(bytes).first(bytes.size() - 64));
}

void http_seeds(const fs::path& out) {
  const std::string png = text_of(encoded(".png", pattern(64, 64, CV_8UC3)));
  const std::string jpeg = text_of(encoded(".jpg", pattern(80, 48, CV_8UC3)));
  const auto post = [](const std::string& target, const std::string& type,
                       const std::string& body) {
    return "POST " + target + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: " + type +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  write(out / "inspect_png", post("/v1/inspect?category=tile&name=a.png", "image/png", png));
  write(out / "inspect_jpeg", post("/v1/inspect?category=tile", "image/jpeg", jpeg));
  write(out / "resolve_json",
        post("/v1/reports/1/resolve", "application/json", R"({"resolution": "false_alarm"})"));
  write(out / "resolve_cross_origin",
        "POST /v1/reports/1/resolve HTTP/1.1\r\nHost: localhost\r\nOrigin: http://evil.example\r\n"
        "Sec-Fetch-Site: cross-site\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}");
  write(out / "inspect_form_typed",
        post("/v1/inspect?category=tile", "application/x-www-form-urlencoded", png));
  const std::string boundary = "----fuzzboundary";
  write(out / "inspect_multipart",
        post("/v1/inspect?category=tile", "multipart/form-data; boundary=" + boundary,
             "--" + boundary +
                 "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"m.png\"\r\n"
                 "Content-Type: image/png\r\n\r\n" +
                 png + "\r\n--" + boundary + "--\r\n"));
  write(
      out / "inspect_chunked",
      "POST /v1/inspect?category=tile HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + [&] {
        char size[16];
        std::snprintf(size, sizeof size, "%zx", png.size());
        return std::string(size) + "\r\n" + png + "\r\n0\r\n\r\n";
      }());
  write(out / "gets",
        "GET /v1/categories HTTP/1.1\r\n\r\nGET /v1/reports?limit=5&category=tile HTTP/1.1\r\n\r\n"
        "GET /v1/images/1 HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n"
        "\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n");
  write(out / "range", "GET /app.js HTTP/1.1\r\nRange: bytes=0-10,20-30\r\n\r\n");
  write(out / "head", "HEAD /livez HTTP/1.0\r\n\r\n");
}

// --- PyTorch checkpoints: pickles and zip archives written by hand ------------------------------

std::string little_endian(std::uint64_t value, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  return out;
}

// A protocol-2 pickle opcode that pushes a short string (BINUNICODE).
std::string unicode(const std::string& text) {
  return "X" + little_endian(text.size(), 4) + text;
}

// torch.save's pickle of {name: FloatTensor of `numel` elements in storage `key`}, as an
// OrderedDict, the way state_dict() pickles (with its _metadata left out).
// `view`: the pickled shape and stride tuples; empty: (numel,) and (1,).
std::string state_dict_pickle(const std::string& name, const std::string& key, int numel,
                              bool legacy, const std::string& view = "") {
  const std::string ordered_dict = "ccollections\nOrderedDict\n)R";
  std::string p = "\x80\x02" + ordered_dict;
  p += unicode(name);
  p += "ctorch._utils\n_rebuild_tensor_v2\n(";
  // persistent id: ('storage', torch.FloatStorage, key, 'cpu', numel[, None])
  p += "(" + unicode("storage") + "ctorch\nFloatStorage\n" + unicode(key) + unicode("cpu") + "K" +
       static_cast<char>(numel) + (legacy ? "N" : "") + "tQ";
  p +=
      std::string("K\x00", 2) +  // offset, shape, stride
      (view.empty() ? "K" + std::string(1, static_cast<char>(numel)) + "\x85" + "K\x01\x85" : view);
  p += "\x89" + ordered_dict + "tR";  // requires_grad, backward hooks; REDUCE
  p += "s.";                          // SETITEM, STOP
  return p;
}

std::string floats(int numel) {
  std::string bytes;
  for (int i = 0; i < numel; ++i) {
    const float value = 0.25f * static_cast<float>(i) - 1.0f;
    bytes.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  return bytes;
}

// A zip archive of stored (uncompressed) entries, as torch.save writes them (without its
// alignment padding and zip64 records, which the reader does not need).
std::string stored_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out;
  std::string directory;
  for (const auto& [name, data] : entries) {
    const auto crc = static_cast<std::uint32_t>(
        ::crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    const std::string common = little_endian(0, 2) + little_endian(0, 2) + little_endian(0, 2) +
                               little_endian(0, 2) + little_endian(crc, 4) +
                               little_endian(data.size(), 4) + little_endian(data.size(), 4) +
                               little_endian(name.size(), 2) + little_endian(0, 2);
    const std::size_t offset = out.size();
    out += little_endian(0x04034b50, 4) + little_endian(20, 2) + common + name + data;
    directory += little_endian(0x02014b50, 4) + little_endian(20, 2) + little_endian(20, 2) +
                 common + little_endian(0, 2) + little_endian(0, 2) + little_endian(0, 2) +
                 little_endian(0, 4) + little_endian(offset, 4) + name;
  }
  const std::size_t directory_offset = out.size();
  out += directory;
  out += little_endian(0x06054b50, 4) + little_endian(0, 2) + little_endian(0, 2) +
         little_endian(entries.size(), 2) + little_endian(entries.size(), 2) +
         little_endian(directory.size(), 4) + little_endian(directory_offset, 4) +
         little_endian(0, 2);
  return out;
}

// Seeds are checked: a seed the reader refuses would start the fuzzer in the wrong place.
void expect_checkpoint(const std::string& bytes, const char* name) {
  try {
    const pv::nn::TorchCheckpoint checkpoint(std::as_bytes(std::span(bytes.data(), bytes.size())),
                                             name);
    if (checkpoint.state_dict().size() != 1) throw pv::Error("not one tensor");
  } catch (const pv::Error& e) {
    std::fprintf(stderr, "fuzz_seeds: seed %s is refused: %s\n", name, e.what());
    std::exit(1);
  }
}

void checkpoint_seeds(const fs::path& out) {
  const std::string zip = stored_zip({{"archive/data.pkl", state_dict_pickle("w", "0", 4, false)},
                                      {"archive/byteorder", "little"},
                                      {"archive/data/0", floats(4)},
                                      {"archive/version", "3\n"}});
  expect_checkpoint(zip, "zip");
  write(out / "state_dict.pth", zip);
  // A strided view (a transposed 2 x 2): the path that gathers views into copies, where zero
  // strides once expanded a few bytes into gigabytes.
  const std::string strided = stored_zip(
      {{"archive/data.pkl", state_dict_pickle("w", "0", 4, false, "K\x02K\x02\x86K\x01K\x02\x86")},
       {"archive/byteorder", "little"},
       {"archive/data/0", floats(4)},
       {"archive/version", "3\n"}});
  expect_checkpoint(strided, "strided");
  write(out / "strided.pth", strided);
  // The legacy format: magic number, protocol version, system info, the object, storage keys,
  // then each storage as an int64 element count and its bytes.
  const std::string legacy =
      std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15) +
      "\x80\x02M\xe9\x03." + "\x80\x02}." + state_dict_pickle("w", "0", 4, true) + "\x80\x02]" +
      unicode("0") + "a." + little_endian(4, 8) + floats(4);
  expect_checkpoint(legacy, "legacy");
  write(out / "legacy.pth", legacy);
}

void pickle_seeds(const fs::path& out) {
  write(out / "state_dict.pkl", state_dict_pickle("layer1.0.conv1.weight", "0", 9, false));
  // What Lightning and anomalib put beside tensors: dicts, lists, floats, objects of classes.
  write(out / "objects.pkl",
        "\x80\x04}(" + unicode("epoch") + "K\x03" + unicode("lr") +
            "G?\xb9\x99\x99\x99\x99\x99\x9a" + unicode("layers") + "]" + "(" + unicode("layer2") +
            unicode("layer3") + "e" + unicode("obj") +
            "ccopyreg\n_reconstructor\ncargparse\nNamespace\ncbuiltins\nobject\nN\x87R}" +
            unicode("x") + "\x88sbu.");
}

}  // namespace

void station_seeds(const fs::path& out) {
  write(out / "journal.jsonl",
        std::string(R"({"seq":1,"key":"0123456789abcdef0123456789abcdef","verdict":"normal"})") +
            "\n" + R"({"seq":2,"key":"fedcba9876543210fedcba9876543210","verdict":"anomalous"})" +
            "\n" + R"({"seq":3,"key":"00)");
  write(out / "station.toml", std::string(R"(name = "line-1"
state = "state"
[http]
port = 8080
[[lanes]]
name = "top"
model = "models/tile.pvm"
[lanes.folder]
dir = "in"
after = "move"
[[lanes.mqtt]]
url = "mqtt://user:pw@127.0.0.1:1883/line1/top"
[[lanes.webhook]]
url = "https://mes.example/hook"
secret = "s"
[lanes.modbus]
port = 1502
handshake = true
[lanes.archive]
dir = "evidence"
keep = "all"
)"));
  write(out / "url", std::string("mqtts://u:p@[::1]:8883/a/b\n"));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds OUT\n");
    return 2;
  }
  const fs::path out = argv[1];
  const fs::path scratch = out / ".scratch";
  fs::create_directories(scratch);
  image_seeds(out / "image");
  preprocess_seeds(out / "preprocess");
  safetensors_seeds(out / "safetensors");
  model_file_seeds(out / "model_file", scratch);
  store_file_seeds(out / "store_file", scratch);
  http_seeds(out / "http");
  checkpoint_seeds(out / "checkpoint");
  pickle_seeds(out / "pickle");
  station_seeds(out / "station");
  fs::remove_all(scratch);
  return 0;
}
