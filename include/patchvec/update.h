// Updating a model in place with good images, and recording it in the store: what `patchvec
// update` does with new good images and with reports an operator resolved as false alarms.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include <patchvec/model.h>
#include <patchvec/store.h>

namespace pv {

struct ModelUpdate {
  UpdateReport bank;
  std::vector<std::int64_t> reports_applied;  // false alarms whose images joined the bank
  std::size_t images_stored = 0;              // new good images stored in the store
};

// Adds good images to a model without refitting (Model::add_normal_images) and records it:
// `images`, and with `from_reports` the images of the model's category's reports resolved as
// false alarms and not yet applied. The model is written to `model_file` atomically (a failure
// leaves the old file); then `images` are stored as normal images and the reports marked applied.
ModelUpdate update_model(Model& model, const std::filesystem::path& model_file, VectorStore& store,
                         std::span<const std::filesystem::path> images, bool from_reports);

}  // namespace pv
