#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include <patchvec/batcher.h>
#include <patchvec/error.h>

namespace pv {
namespace {

using Clock = std::chrono::steady_clock;

// One caller's image, waiting for its batch; owned by the caller, who blocks on `answer`.
struct Request {
  const Model* model;
  const Image* image;
  const Embedder* backbone;
  Clock::time_point arrived;
  std::promise<Prediction> answer;
};

// Request `index` of a batch's embeddings: its inputs (one, or its tiles) copied out.
PatchEmbeddings inputs_of(const PatchEmbeddings& all, std::int64_t first, std::int64_t count,
                          const TileLayout* layout) {
  const auto per_input = static_cast<std::size_t>(all.grid.height * all.grid.width * all.grid.dim);
  PatchEmbeddings one{.count = count, .grid = all.grid};
  const auto begin = all.values.begin() + static_cast<std::ptrdiff_t>(first * per_input);
  one.values.assign(begin, begin + static_cast<std::ptrdiff_t>(count * per_input));
  if (layout != nullptr) one.layouts = {*layout};
  return one;
}

}  // namespace

struct PredictionBatcher::Impl {
  BatcherOptions options;
  mutable std::mutex mutex;
  std::condition_variable arrived;
  std::deque<Request*> queue;
  std::map<const Embedder*, int> announced;  // predictions on their way, by backbone
  bool stopping = false;

  // Under `mutex`.
  void withdraw(const Embedder* backbone) {
    if (--announced[backbone] == 0) announced.erase(backbone);
  }
  BatcherStats stats;
  std::thread worker;

  // The compute thread: waits for a request, gives the requests announced for its backbone up to
  // max_wait_ms (from the first one's arrival) to join, then runs them.
  void run() {
    std::unique_lock lock(mutex);
    for (;;) {
      arrived.wait(lock, [&] { return stopping || !queue.empty(); });
      if (queue.empty()) return;
      const Embedder* backbone = queue.front()->backbone;
      // A tiled image fills a forward pass with its tiles already, and small tiles are where
      // oneDNN's choice of convolution may depend on the batch: one image at a time.
      const int room = backbone->options().tiling.enabled() ? 1 : options.max_batch;
      const auto deadline = queue.front()->arrived +
                            std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double, std::milli>(options.max_wait_ms));
      const auto joined = [&] {
        return std::count_if(queue.begin(), queue.end(),
                             [&](const Request* r) { return r->backbone == backbone; });
      };
      const auto coming = [&] {
        const auto it = announced.find(backbone);
        return it != announced.end() && it->second > 0;
      };
      while (!stopping && joined() < room && coming()) {
        if (arrived.wait_until(lock, deadline) == std::cv_status::timeout) break;
      }
      std::vector<Request*> batch;
      for (auto it = queue.begin();
           it != queue.end() && batch.size() < static_cast<std::size_t>(room);) {
        if ((*it)->backbone == backbone) {
          batch.push_back(*it);
          it = queue.erase(it);
        } else {
          ++it;
        }
      }
      // Counted before the answers go out: a caller that got its answer sees its batch counted.
      ++stats.batches;
      stats.images += static_cast<std::int64_t>(batch.size());
      lock.unlock();
      run_batch(*backbone, batch);
      lock.lock();
    }
  }

  // One forward pass for the whole batch, then each image scored by its own model.
  static void run_batch(const Embedder& backbone, const std::vector<Request*>& batch) {
    std::vector<const Image*> images;
    images.reserve(batch.size());
    for (const Request* r : batch) images.push_back(r->image);
    std::vector<std::string> failed;
    PatchEmbeddings all;
    try {
      all = backbone.embed(images, &failed);
    } catch (...) {
      for (Request* r : batch) r->answer.set_exception(std::current_exception());
      return;
    }
    std::int64_t first = 0;
    std::size_t tiled = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Request& r = *batch[i];
      if (!failed[i].empty()) {
        r.answer.set_exception(
            std::make_exception_ptr(ImageError(ImageError::Kind::kDamaged, failed[i])));
        continue;
      }
      const TileLayout* layout = all.layouts.empty() ? nullptr : &all.layouts[tiled++];
      const auto count = layout != nullptr ? static_cast<std::int64_t>(layout->count()) : 1;
      try {
        r.answer.set_value(std::move(r.model->score(inputs_of(all, first, count, layout)).front()));
      } catch (...) {
        r.answer.set_exception(std::current_exception());
      }
      first += count;
    }
  }
};

PredictionBatcher::PredictionBatcher(const BatcherOptions& options)
    : impl_(std::make_unique<Impl>()) {
  if (options.max_batch < 1) throw Error("--max-batch must be at least 1");
  if (!(options.max_wait_ms >= 0)) throw Error("--batch-wait-ms cannot be negative");
  impl_->options = options;
  impl_->worker = std::thread([this] { impl_->run(); });
}

PredictionBatcher::~PredictionBatcher() {
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->arrived.notify_all();
  impl_->worker.join();
}

PredictionBatcher::Announcement::Announcement(Announcement&& other) noexcept
    : impl_(std::exchange(other.impl_, nullptr)), backbone_(other.backbone_) {}

PredictionBatcher::Announcement::~Announcement() {
  if (impl_ == nullptr) return;
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->withdraw(backbone_);
  }
  impl_->arrived.notify_all();  // a batch waiting for it need not wait longer
}

PredictionBatcher::Announcement PredictionBatcher::announce(const Model& model) {
  const std::lock_guard lock(impl_->mutex);
  ++impl_->announced[&model.backbone()];
  return Announcement(impl_.get(), &model.backbone());
}

Prediction PredictionBatcher::predict(const Model& model, const Image& image,
                                      Announcement* announced) {
  Request request{.model = &model,
                  .image = &image,
                  .backbone = &model.backbone(),
                  .arrived = Clock::now(),
                  .answer = {}};
  std::future<Prediction> answer = request.answer.get_future();
  {
    const std::lock_guard lock(impl_->mutex);
    if (impl_->stopping) throw Error("the prediction batcher is stopping");
    if (announced != nullptr && announced->impl_ == impl_.get()) {
      impl_->withdraw(announced->backbone_);  // it arrives now
      announced->impl_ = nullptr;
    }
    impl_->queue.push_back(&request);
  }
  impl_->arrived.notify_all();
  return answer.get();
}

BatcherStats PredictionBatcher::stats() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

}  // namespace pv
