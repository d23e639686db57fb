#include <algorithm>
#include <map>
#include <set>
#include <string>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/image.h>

namespace pv {
namespace fs = std::filesystem;
namespace {

bool is_hidden(const fs::path& path) {
  return path.filename().string().starts_with('.');
}

std::vector<fs::path> image_files(const fs::path& folder) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.is_regular_file() && !is_hidden(entry.path()) && has_image_extension(entry.path())) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<fs::path> subfolders(const fs::path& folder) {
  std::vector<fs::path> folders;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.is_directory() && !is_hidden(entry.path())) folders.push_back(entry.path());
  }
  std::sort(folders.begin(), folders.end());
  return folders;
}

void require_folder(const fs::path& folder, const std::string& context) {
  if (!fs::is_directory(folder)) throw Error(context + "missing folder " + folder.string());
}

std::string join(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

std::vector<Sample> read_test_split(const Category& category) {
  const std::string context = "category " + category.name + ": ";
  const fs::path test_root = category.root / "test";
  const fs::path mask_root = category.root / "ground_truth";
  require_folder(test_root, context);

  std::vector<Sample> samples;
  std::set<fs::path> masks_used;
  auto folders = subfolders(test_root);
  // Defect-free images first, then defect types in name order.
  std::stable_partition(folders.begin(), folders.end(),
                        [](const fs::path& f) { return f.filename() == kGoodLabel; });
  for (const auto& folder : folders) {
    const std::string defect = folder.filename().string();
    for (const auto& file : image_files(folder)) {
      Sample sample{.image = file,
                    .relative_path = fs::relative(file, category.root).string(),
                    .split = Split::kTest,
                    .defect = defect};
      if (sample.anomalous()) {
        sample.mask = mask_root / defect / (file.stem().string() + "_mask.png");
        if (!fs::is_regular_file(sample.mask)) {
          throw Error(context + "test image " + sample.relative_path + " has no mask " +
                      sample.mask.string());
        }
        masks_used.insert(sample.mask);
      }
      samples.push_back(std::move(sample));
    }
  }
  if (samples.empty()) throw Error(context + "no images under " + test_root.string());

  if (fs::is_directory(mask_root)) {
    for (const auto& folder : subfolders(mask_root)) {
      for (const auto& mask : image_files(folder)) {
        if (!masks_used.contains(mask)) {
          throw Error(context + "mask " + mask.string() + " has no test image in " +
                      (test_root / folder.filename()).string());
        }
      }
    }
  }
  return samples;
}

}  // namespace

std::vector<std::string> list_categories(const fs::path& root) {
  if (!fs::is_directory(root)) {
    throw Error("dataset root " + root.string() +
                (fs::exists(root) ? " is not a folder" : " does not exist"));
  }
  std::vector<std::string> names;
  for (const auto& folder : subfolders(root)) {
    if (fs::is_directory(folder / "train" / kGoodLabel))
      names.push_back(folder.filename().string());
  }
  return names;
}

Category read_category(const fs::path& root, const std::string& name, bool with_test) {
  const auto available = list_categories(root);
  if (std::find(available.begin(), available.end(), name) == available.end()) {
    throw Error("category " + name + " not found in " + root.string() +
                (available.empty() ? " (no folder there has train/good)"
                                   : " (available: " + join(available) + ")"));
  }
  Category category{.name = name, .root = root / name};
  const std::string context = "category " + name + ": ";
  const fs::path train_root = category.root / "train" / kGoodLabel;
  for (const auto& file : image_files(train_root)) {
    category.train.push_back(Sample{.image = file,
                                    .relative_path = fs::relative(file, category.root).string(),
                                    .split = Split::kTrain});
  }
  if (category.train.empty()) throw Error(context + "no images in " + train_root.string());
  if (with_test) category.test = read_test_split(category);
  return category;
}

std::vector<fs::path> list_images(const fs::path& folder) {
  if (!fs::is_directory(folder)) throw Error("image folder " + folder.string() + " does not exist");
  auto files = image_files(folder);
  if (files.empty()) throw Error("image folder " + folder.string() + " holds no PNG or JPEG image");
  return files;
}

std::vector<std::filesystem::path> expand_images(
    std::span<const std::filesystem::path> images_or_folders) {
  std::vector<std::filesystem::path> paths;
  for (const auto& argument : images_or_folders) {
    if (std::filesystem::is_directory(argument)) {
      const auto inside = list_images(argument);
      paths.insert(paths.end(), inside.begin(), inside.end());
    } else {
      paths.push_back(argument);
    }
  }
  return paths;
}

}  // namespace pv
