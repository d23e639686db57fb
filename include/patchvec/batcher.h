// Predictions for many threads at once, on one compute thread: what a service needs when clients
// send images concurrently. Requests that arrive within a few milliseconds of each other and
// whose models share a backbone (BackboneCache) go through the network as one batch; then each
// is scored by its own model. Only the batcher's thread computes, with libtorch's threads, so
// concurrent requests never start teams of threads on top of each other.
#pragma once

#include <cstdint>
#include <memory>

#include <patchvec/image.h>
#include <patchvec/model.h>

namespace pv {

struct BatcherOptions {
  int max_batch = 8;  // images per forward pass
  // How long a batch waits for announced predictions (announce()) to join it. Never longer, and
  // not at all when none is announced: a lone request runs at once.
  double max_wait_ms = 5.0;
};

struct BatcherStats {
  std::int64_t batches = 0;  // forward passes run
  std::int64_t images = 0;   // images predicted
};

// Thread-safety: predict() may be called from any number of threads at once. The models passed
// to predict() must outlive the call (it blocks until its prediction is done).
class PredictionBatcher {
  struct Impl;

 public:
  // Starts the compute thread. Throws pv::Error for max_batch < 1 or a negative wait.
  explicit PredictionBatcher(const BatcherOptions& options = {});
  // Finishes the requests queued, then stops the thread.
  ~PredictionBatcher();
  PredictionBatcher(const PredictionBatcher&) = delete;
  PredictionBatcher& operator=(const PredictionBatcher&) = delete;

  // A prediction on its way (its image being read): a batch of the same backbone that starts
  // meanwhile waits up to max_wait_ms for it. Pass it to predict(); dropping it unused (the image
  // could not be read) withdraws it.
  class Announcement {
   public:
    Announcement(Announcement&& other) noexcept;
    Announcement(const Announcement&) = delete;
    Announcement& operator=(const Announcement&) = delete;
    Announcement& operator=(Announcement&&) = delete;
    ~Announcement();

   private:
    friend class PredictionBatcher;
    Announcement(Impl* impl, const Embedder* backbone) : impl_(impl), backbone_(backbone) {}
    Impl* impl_;
    const Embedder* backbone_;
  };
  Announcement announce(const Model& model);

  // model.predict(image), batched with concurrent requests. The answer is the same bit for bit
  // as predicting the image alone: each image is scored alone, and the network's result for a
  // whole image does not depend on the others in its batch (tested; images of tiled models, whose
  // tiles fill a batch already, run one at a time). Throws what model.predict() does, for this
  // image only: a failing image fails its own request, not its batch.
  Prediction predict(const Model& model, const Image& image, Announcement* announced = nullptr);

  BatcherStats stats() const;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace pv
