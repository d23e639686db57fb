// Reading image collections: the MVTec AD layout and plain folders.
//
//   <root>/<category>/train/good/*.png                   defect-free training images
//   <root>/<category>/test/<defect>/*.png                "good" or a defect type
//   <root>/<category>/ground_truth/<defect>/<stem>_mask.png   one mask per defective test image
//
// Files are listed in name order; hidden files and files without an image extension are skipped.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <patchvec/split.h>

namespace pv {

inline constexpr const char* kGoodLabel = "good";

struct Sample {
  std::filesystem::path image;
  std::string relative_path;  // under the category folder, e.g. "test/crack/000.png"
  Split split = Split::kTrain;
  std::string defect = kGoodLabel;  // the folder name; "good" for defect-free images
  std::filesystem::path mask;       // empty for defect-free images

  bool anomalous() const { return defect != kGoodLabel; }
};

struct Category {
  std::string name;
  std::filesystem::path root;  // <dataset root>/<name>
  std::vector<Sample> train;
  std::vector<Sample> test;  // good images first, then defect types in name order
};

// Names of the sub-folders of `root` that look like MVTec AD categories (have train/good),
// sorted. Throws pv::Error if `root` is not a folder.
std::vector<std::string> list_categories(const std::filesystem::path& root);

// Reads one category. The train split must hold images. With `with_test`, test/ is read too: it
// must hold images, and every defective test image must have its mask (and every mask its image);
// without, `test` stays empty. Throws pv::Error naming the folder or file at fault.
Category read_category(const std::filesystem::path& root, const std::string& name,
                       bool with_test = true);

// The images directly inside `folder`, sorted by name. Throws pv::Error if the folder is missing
// or holds no image.
std::vector<std::filesystem::path> list_images(const std::filesystem::path& folder);

// Images named by a user (the command line, the Python module): a folder expands to the images
// directly inside it (list_images()), anything else is taken as an image file, in order.
std::vector<std::filesystem::path> expand_images(
    std::span<const std::filesystem::path> images_or_folders);

}  // namespace pv
