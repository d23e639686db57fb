#include "station/position.h"

#include <charconv>
#include <string>

#include <patchvec/error.h>
#include <patchvec/files.h>

namespace pv::station {

SinkPosition::SinkPosition(std::filesystem::path file, std::uint64_t journal_size)
    : file_(std::move(file)), saved_at_(std::chrono::steady_clock::now()) {
  std::error_code error;
  if (!std::filesystem::exists(file_, error)) return;
  const auto bytes = read_file(file_, 64);
  std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  std::uint64_t value = 0;
  const auto [end, problem] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (problem != std::errc() || end != text.data() + text.size() || text.empty()) {
    throw Error("sink position " + file_.string() + " is not a number");
  }
  if (value > journal_size) {
    throw Error("sink position " + file_.string() + " is " + std::to_string(value) +
                ", beyond the journal's " + std::to_string(journal_size) +
                " records: the journal was replaced; remove the position file to deliver the "
                "journal from its start");
  }
  delivered_ = saved_ = value;
}

void SinkPosition::advance(std::uint64_t delivered) {
  if (delivered > delivered_) delivered_ = delivered;
}

void SinkPosition::save() {
  if (saved_ == delivered_) return;
  AtomicFile out(file_);
  out.write(std::to_string(delivered_) + "\n");
  out.commit();
  saved_ = delivered_;
  saved_at_ = std::chrono::steady_clock::now();
}

void SinkPosition::save_due(std::chrono::milliseconds interval) {
  if (std::chrono::steady_clock::now() - saved_at_ >= interval) save();
}

}  // namespace pv::station
