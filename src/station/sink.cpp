#include "station/sink.h"

#include <vector>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/log.h>

namespace pv::station {
namespace {

constexpr auto kSaveInterval = std::chrono::milliseconds(200);

}  // namespace

JournalSink::JournalSink(const Journal& journal, const std::filesystem::path& position_file,
                         std::string name)
    : journal_(journal),
      name_(std::move(name)),
      position_(position_file, journal.size()),
      delivered_(position_.delivered()),
      delivered_at_start_(position_.delivered()) {
  wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_ < 0) throw Error(name_ + ": cannot create an eventfd");
}

JournalSink::~JournalSink() {
  stop_thread();
  ::close(wake_);
}

void JournalSink::start() {
  thread_ = std::thread([this] {
    try {
      deliver();
    } catch (const std::exception& e) {
      log::warn(name_ + ": stopped delivering: " + e.what());
    }
    try {
      position_.save();
    } catch (const Error& e) {
      log::warn(name_ + ": " + e.what());
    }
  });
}

void JournalSink::notify() {
  const std::uint64_t one = 1;
  (void)!::write(wake_, &one, sizeof one);
}

void JournalSink::drain_and_stop(std::chrono::steady_clock::time_point deadline) {
  {
    const std::lock_guard lock(mutex_);
    if (!stop_ || deadline < drain_until_) drain_until_ = deadline;
    stop_ = true;
  }
  notify();
  if (thread_.joinable()) thread_.join();
}

SinkStatus JournalSink::status() const {
  const std::uint64_t delivered = delivered_.load();
  const std::uint64_t recorded = journal_.size();
  return {.name = name_,
          .connected = connected_.load(),
          .delivered = delivered - delivered_at_start_,
          .pending = recorded > delivered ? recorded - delivered : 0,
          .reconnects = reconnects_.load(),
          .latency_p50_ms = latency_.percentile_ms(0.5),
          .latency_p95_ms = latency_.percentile_ms(0.95)};
}

bool JournalSink::stop_requested() const {
  const std::lock_guard lock(mutex_);
  return stop_;
}

bool JournalSink::stopping() const {
  const std::lock_guard lock(mutex_);
  if (!stop_) return false;
  return delivered_.load() >= journal_.size() || std::chrono::steady_clock::now() >= drain_until_;
}

short JournalSink::wait(int timeout_ms, int fd, short events) const {
  pollfd other{.fd = fd, .events = events, .revents = 0};
  wait(timeout_ms, fd >= 0 ? std::span(&other, 1) : std::span<pollfd>());
  return other.revents;
}

void JournalSink::wait(int timeout_ms, std::span<pollfd> fds) const {
  std::vector<pollfd> all{{.fd = wake_, .events = POLLIN, .revents = 0}};
  all.insert(all.end(), fds.begin(), fds.end());
  const int n = ::poll(all.data(), all.size(), timeout_ms);
  for (std::size_t i = 0; i < fds.size(); ++i) fds[i].revents = n > 0 ? all[i + 1].revents : 0;
  if (n > 0 && (all[0].revents & POLLIN) != 0) {
    std::uint64_t count = 0;
    (void)!::read(wake_, &count, sizeof count);
  }
}

void JournalSink::acknowledge(std::uint64_t delivered) {
  const auto now = std::chrono::system_clock::now();
  for (std::uint64_t seq = position_.delivered() + 1; seq <= delivered; ++seq) {
    const auto captured = journal_.captured(seq);
    if (captured.time_since_epoch().count() != 0) {
      latency_.observe(std::chrono::duration<double>(now - captured).count());
    }
  }
  position_.advance(delivered);
  delivered_ = position_.delivered();
  save_position_due();
}

void JournalSink::save_position_due() {
  position_.save_due(kSaveInterval);
}

}  // namespace pv::station
