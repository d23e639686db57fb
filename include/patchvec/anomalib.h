// PatchCore models trained with anomalib, as PatchVec models: read an anomalib 1.x or 2.x
// Lightning checkpoint (.ckpt) without Python and without running it, and build the .pvm that
// scores images as anomalib does.
//
// What is read, by anomalib version (the state_dict's keys):
//   both   model.feature_extractor.feature_extractor.<torchvision name>   the backbone (timm's
//          ResNets use torchvision's names), model.memory_bank (M x D), hyper_parameters
//          backbone, layers, num_neighbors, coreset_sampling_ratio
//   1.x    image_threshold.value, pixel_threshold.value,
//          normalization_metrics.{pred_scores,anomaly_maps}.{min,max}; checkpoint["transform"]
//   2.x    post_processor.{_image_threshold,_pixel_threshold,image_min,image_max,pixel_min,
//          pixel_max}; hyper_parameters.pre_processor (when it is an object)
// Resize and CenterCrop sizes come from the transforms the checkpoint holds; without them, the
// version's default (1.x: 256 then 224; 2.1+: 256, no crop) is assumed and said so.
// Anomaly maps are upsampled as anomalib does (nearest) and blurred with sigma 4.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <patchvec/model.h>

namespace pv {

struct AnomalibImportOptions {
  std::string category;  // the model's category (its file name): required
  int image_size = 0;    // 0: from the checkpoint's transforms or the version's default
  int crop_size = -1;    // -1: from the checkpoint's transforms or the version's default; 0: none
  int threads = 0;       // libtorch threads (0 = one per core)
};

struct AnomalibImport {
  Model model;
  std::string layout;              // "anomalib 1.x" or "anomalib 2.x"
  std::string weights_prefix;      // where the backbone's tensors were found
  std::vector<std::string> notes;  // every assumption made, in words
};

// Reads `checkpoint` and builds the model; its backbone's weights are carried in the model file,
// so the .pvm needs no other file. Throws pv::Error naming the checkpoint and the key for a file
// that is not an anomalib PatchCore checkpoint, refused content (see nn/pickle.h), layers other
// than layer2 + layer3, a memory bank that does not fit the backbone, or non-square sizes.
AnomalibImport import_anomalib(const std::filesystem::path& checkpoint,
                               const AnomalibImportOptions& options);

}  // namespace pv
