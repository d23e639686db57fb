// Inspecting an image against a model and a vector store, the way the seed's quality engineers
// asked for it: if the image is normal and similar enough to known images, show the most similar
// ones; otherwise report it as an anomaly and show the closest known defects.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <patchvec/model.h>
#include <patchvec/report_spool.h>
#include <patchvec/store.h>

namespace pv {

// The seed's rule for models without a calibrated one (ModelInfo::similarity).
inline constexpr double kDefaultMinSimilarity = 0.9;

struct InspectOptions {
  std::size_t k = 10;
  // Cosine similarity to the closest normal image below which an image is reported. Unset: the
  // model's calibrated rule (ModelInfo::similarity), else kDefaultMinSimilarity.
  std::optional<double> min_similarity;
  bool report = true;  // write an anomaly report to the store for anomalous verdicts
  // Called when a report is written: where the image's bytes are kept for the operator's later
  // decision (the service saves uploads). Unset: `path`, a file the caller read.
  std::function<std::string()> keep_image;
  // Where a report goes when the store cannot take it now (ReportSpool::add()); none: the
  // store's UnavailableError is thrown.
  ReportSpool* spool = nullptr;
};

// The minimum similarity `options` and `model` make: the override, the model's rule, or 0.9.
double min_similarity(const Model& model, const InspectOptions& options);

struct Inspection {
  std::string path;
  std::string category;
  Verdict verdict = Verdict::kNormal;  // never kUnknown: an inspection always decides
  std::string reason;                  // why, in words: "score 31.2 >= threshold 27.0", ...
  float score = 0;
  float normalized = 0;        // NaN without thresholds
  float threshold = 0;         // NaN without thresholds
  double best_similarity = 0;  // to the closest stored normal image of the category; 0 if none
  // Normal verdict: the k most similar normal images. Anomalous: the k closest known defects.
  std::vector<Match> matches;
  std::optional<std::int64_t> report_id;
  bool report_pending = false;  // the report waits in the spool: stored once the store takes it
  // Why the answer is thinner than usual, in one line; empty when it is not. Today: the store
  // holds no normal image of the category, so the verdict rests on the score alone.
  std::string note;
};

// Judges one predicted image: normal when its score is below the model's image threshold (if the
// model has one) and its best similarity to the category's normal images reaches
// min_similarity(). Normal: the k most similar normal images (by image embeddings). Anomalous:
// the k closest known defects (by defect embeddings, which stored defective images carry).
// Searches only the model's category: each category's model has its own embedding space.
// A store without normal images of the category (not indexed yet) leaves the verdict to the
// score alone, with no matches and a `note` saying so; a store that fails throws.
Inspection inspect(const Model& model, VectorStore& store, const Prediction& prediction,
                   const std::string& path, const InspectOptions& options = {});

// An operator's decision on a report, carried out: a false alarm's image joins the category's
// normal images in the store (patchvec update then adds it to the model's memory bank); a
// defect's image is stored as a labelled anomaly of the named type, which "closest known defect"
// searches find from then on. The image is read again from where the report kept it and embedded
// with `model` (the report's category). Throws NotFoundError, ConflictError (resolved already),
// or pv::Error (a bad resolution, another category's model, the image gone). The decision and
// its image are one change of the store: a refused decision stores nothing.
ResolvedReport resolve_report(const Model& model, VectorStore& store, std::int64_t report_id,
                              const ReportResolution& resolution);

}  // namespace pv
