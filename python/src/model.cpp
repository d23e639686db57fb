// Models, datasets, predictions, training and evaluation for Python.
#include <random>

#include <patchvec/dataset.h>
#include <patchvec/evaluation.h>
#include <patchvec/json.h>
#include <patchvec/pictures.h>
#include <patchvec/precision.h>
#include <patchvec/search_method.h>
#include <patchvec/system.h>
#include <patchvec/training.h>

#include "bindings.h"

namespace pvpy {
namespace {

// A folder of its own for arrays that must become files (fitting reads files): removed with it.
class TempFolder {
 public:
  TempFolder() {
    std::random_device random;
    path_ = std::filesystem::temp_directory_path() /
            ("patchvec-py-" + std::to_string(random()) + std::to_string(random()));
    std::filesystem::create_directories(path_);
  }
  ~TempFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

py::object prediction_object(pv::Prediction prediction, const pv::Model& model, std::string image,
                             int width, int height, std::string error = {}) {
  const auto& embedder = model.info().options.embedder;
  return py::cast(PyPrediction{.prediction = std::move(prediction),
                               .image = std::move(image),
                               .width = width,
                               .height = height,
                               .image_size = embedder.image_size,
                               .crop_size = embedder.crop_size,
                               .error = std::move(error)});
}

// Predictions of `images` (files read by the library, arrays as they are), in order.
py::object predict(const pv::Model& model, const Images& images) {
  std::vector<pv::Prediction> predictions;
  // One image asked for that cannot be read is its ImageError; in a list, its Prediction says
  // why (as `patchvec predict` scores the others).
  std::vector<std::string> unreadable;
  std::vector<std::string>* skip = images.single ? nullptr : &unreadable;
  std::vector<std::pair<int, int>> sizes(images.size());  // arrays'; a file's when asked
  {
    py::gil_scoped_release release;
    if (!images.paths.empty()) {
      predictions = model.predict(images.paths, "predict", nullptr, skip);
    } else {
      std::vector<const pv::Image*> pointers;
      for (const pv::Image& image : images.arrays) {
        pointers.push_back(&image);
        sizes[pointers.size() - 1] = {image.width, image.height};
      }
      predictions = model.predict(pointers, "predict", nullptr, skip);
    }
  }
  py::list out;
  for (std::size_t i = 0; i < predictions.size(); ++i) {
    out.append(prediction_object(
        std::move(predictions[i]), model, images.paths.empty() ? "" : images.paths[i].string(),
        sizes[i].first, sizes[i].second, unreadable.empty() ? "" : unreadable[i]));
  }
  if (images.single) return out[0];
  return out;
}

// A Category for fitting: a Dataset as it is, or images (arrays written as PNG files first, into
// `folder`) as a category of training images alone.
pv::Category category_of(const py::handle& images, const std::string& name,
                         std::optional<TempFolder>& folder) {
  if (py::isinstance<pv::Category>(images)) return images.cast<pv::Category>();
  pv::check_category_name(name);
  Images read = read_images(images, "images");
  pv::Category category{.name = name};
  py::gil_scoped_release release;
  if (!read.arrays.empty()) {
    folder.emplace();
    category.root = folder->path();
    for (std::size_t i = 0; i < read.arrays.size(); ++i) {
      char file[32];
      std::snprintf(file, sizeof file, "%06zu.png", i);
      read.paths.push_back(folder->path() / file);
      pv::write_png(read.paths.back(), read.arrays[i]);  // 8-bit samples: an exact round trip
    }
  }
  if (read.paths.empty()) throw pv::Error("fit: no training images");
  for (const auto& path : read.paths) {
    category.train.push_back({.image = path, .relative_path = path.string()});
  }
  return category;
}

struct FitArguments {
  std::string category;
  std::string backbone;
  std::optional<std::string> weights;
  double coreset_ratio;
  std::string threshold;
  std::uint64_t seed;
  std::optional<int> tile;
  int tile_overlap;
  double tile_scale;
  int image_size;
  int crop_size;
  std::string precision;
  int batch_size;
  std::optional<std::string> max_memory;
  bool evaluate;
};

pv::TrainOptions train_options(const FitArguments& a) {
  pv::TrainOptions options;
  pv::PatchCoreOptions& model = options.model;
  model.embedder.backbone = a.backbone;
  model.embedder.weights = a.weights.value_or("");
  model.embedder.image_size = a.image_size;
  model.embedder.crop_size = a.crop_size;
  model.embedder.batch_size = a.batch_size;
  model.embedder.threads = threads();
  if (a.tile) {
    model.embedder.tiling = {.size = *a.tile, .overlap = a.tile_overlap, .scale = a.tile_scale};
    pv::validate(model.embedder.tiling);
    model.embedder.image_size = *a.tile;
    model.embedder.crop_size = 0;
  }
  model.coreset_ratio = a.coreset_ratio;
  model.seed = a.seed;
  model.max_memory_bytes =
      a.max_memory ? pv::parse_bytes(*a.max_memory) : pv::default_memory_budget();
  const std::optional<pv::Precision> precision = pv::parse_precision(a.precision, "precision");
  model.precision = precision.value_or(pv::auto_precision());
  options.precision_fallback = !precision.has_value();
  options.thresholds = pv::parse_threshold_policy(a.threshold, "threshold");
  options.evaluate = a.evaluate;
  return options;
}

struct PyTrainResult {
  ModelPtr model;
  py::object summary;  // json::training()
  py::object evaluation;
};

PyTrainResult train(const py::handle& images, const FitArguments& arguments) {
  std::optional<TempFolder> folder;
  const pv::Category category = category_of(images, arguments.category, folder);
  const pv::TrainOptions options = train_options(arguments);
  std::optional<pv::TrainResult> result;
  {
    py::gil_scoped_release release;
    result.emplace(pv::train_category(category, options));
  }
  PyTrainResult out;
  out.summary = to_python(pv::json::training(*result));
  out.evaluation =
      result->evaluation ? to_python(pv::json::evaluation(*result->evaluation)) : py::none();
  out.model = std::make_shared<pv::Model>(std::move(result->model));
  return out;
}

py::dict model_info(const pv::Model& model) {
  const pv::ModelInfo& info = model.info();
  py::dict out = to_python(pv::json::model(info));
  const auto& e = info.options.embedder;
  out["weights"] = info.backbone.weights.empty()
                       ? py::object(py::none())
                       : py::object(py::str(info.backbone.weights.string()));
  out["weights_sha256"] = info.backbone.weights_sha256;
  out["seed"] = info.options.seed;
  out["image_size"] = e.image_size;
  out["crop_size"] = e.crop_size;
  out["tiling"] = e.tiling.enabled() ? py::object(py::dict(py::arg("size") = e.tiling.size,
                                                           py::arg("overlap") = e.tiling.overlap,
                                                           py::arg("scale") = e.tiling.scale))
                                     : py::none();
  out["grid"] = py::make_tuple(info.grid.height, info.grid.width, info.grid.dim);
  out["coreset_ratio"] = info.options.coreset_ratio;
  out["num_neighbors"] = info.options.num_neighbors;
  out["sigma"] = info.options.sigma;
  out["map_upsampling"] = pv::upsampling_name(info.options.upsampling);
  out["train_patches"] = info.train_patches;
  out["covering_radius"] = info.covering_radius;
  out["min_similarity"] =
      info.similarity ? py::object(py::float_(info.similarity->min_similarity)) : py::none();
  return out;
}

py::array_t<float> embeddings_array(pv::PatchEmbeddings embeddings) {
  auto* values = new std::vector<float>(std::move(embeddings.values));
  py::capsule owner(values, [](void* p) { delete static_cast<std::vector<float>*>(p); });
  const auto& g = embeddings.grid;
  const py::ssize_t f = sizeof(float);
  return py::array_t<float>({embeddings.count, g.height, g.width, g.dim},
                            {g.height * g.width * g.dim * f, g.width * g.dim * f, g.dim * f, f},
                            values->data(), owner);
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<pv::Category>(m, "Dataset",
                           "Images of one category in the MVTec AD layout: train/good, "
                           "test/<defect>, ground_truth/<defect>/<stem>_mask.png.")
      .def_static(
          "mvtec",
          [](const py::handle& root, const std::string& category, std::optional<bool> with_test) {
            const auto path = to_path(root, "root");
            py::gil_scoped_release release;
            const bool test =
                with_test.value_or(std::filesystem::is_directory(path / category / "test"));
            return pv::read_category(path, category, test);
          },
          py::arg("root"), py::arg("category"), py::arg("with_test") = py::none(),
          "Reads <root>/<category> (its test split when there is one, unless with_test says "
          "otherwise). Raises patchvec.Error naming the folder or file at fault.")
      .def_static(
          "categories",
          [](const py::handle& root) { return pv::list_categories(to_path(root, "root")); },
          py::arg("root"), "The categories under root (folders with train/good), sorted.")
      .def_property_readonly("name", [](const pv::Category& c) { return c.name; })
      .def_property_readonly("root", [](const pv::Category& c) { return c.root.string(); })
      .def_property_readonly("train",
                             [](const pv::Category& c) {
                               py::list out;
                               for (const auto& s : c.train) out.append(s.image.string());
                               return out;
                             })
      .def_property_readonly(
          "test",
          [](const pv::Category& c) {
            py::list out;
            for (const auto& s : c.test) {
              out.append(py::dict(py::arg("image") = s.image.string(),
                                  py::arg("relative_path") = s.relative_path,
                                  py::arg("defect") = s.defect,
                                  py::arg("mask") = s.mask.empty() ? py::object(py::none())
                                                                   : py::str(s.mask.string())));
            }
            return out;
          })
      .def("__repr__", [](const pv::Category& c) {
        return "<patchvec.Dataset " + c.name + ": " + std::to_string(c.train.size()) +
               " training, " + std::to_string(c.test.size()) + " test images>";
      });

  py::class_<PyPrediction>(m, "Prediction", "One image's score, verdict and anomaly map.")
      .def_property_readonly(
          "score", [](const PyPrediction& p) { return p.prediction.score; },
          "Raw image score (NaN when the image could not be read).")
      .def_property_readonly(
          "normalized", [](const PyPrediction& p) { return p.prediction.normalized; },
          "anomalib's normalisation around the threshold: 0.5 at it; NaN without thresholds.")
      .def_property_readonly(
          "verdict",
          [](const PyPrediction& p) { return std::string(pv::verdict_name(p.prediction.verdict)); },
          "'normal', 'anomalous', or 'unknown' for a model without thresholds.")
      .def_property_readonly(
          "map",
          [](const py::object& self) {
            const auto& p = self.cast<const PyPrediction&>();
            return float_view(p.prediction.map.values, p.prediction.map.height,
                              p.prediction.map.width, self);
          },
          "Raw pixel scores (float32, read-only) at the crop size, or with tiling at the scaled "
          "image's size: what `patchvec predict --maps` writes as <image>_map.npy.")
      .def_property_readonly(
          "map_original",
          [](const PyPrediction& p) {
            if (p.prediction.map.values.empty()) return py::array_t<float>();
            int width = p.width, height = p.height;
            if (width == 0) {  // a file's size, from its header, only when asked
              py::gil_scoped_release release;
              const pv::ImageHeader header = pv::read_image_header(p.image);
              width = header.width;
              height = header.height;
            }
            pv::AnomalyMap original =
                pv::map_on_original(p.prediction.map, p.image_size, p.crop_size, width, height);
            py::array_t<float> out({original.height, original.width});
            std::copy(original.values.begin(), original.values.end(), out.mutable_data());
            return out;
          },
          "The map on the whole original image (NaN where the centre crop cut it away): "
          "<image>_map_original.npy. Computed on each access (a file's header is read then).")
      .def_property_readonly(
          "patch_distances",
          [](const py::object& self) {
            const auto& p = self.cast<const PyPrediction&>();
            return float_view(p.prediction.patch_distances, 0, 0, self);
          },
          "Each patch's distance to its nearest memory-bank patch (row-major patch grid).")
      .def_property_readonly(
          "embedding",
          [](const py::object& self) {
            return float_view(self.cast<const PyPrediction&>().prediction.embedding, 0, 0, self);
          },
          "The image embedding similarity search compares (mean of normalised patches).")
      .def_property_readonly(
          "defect_embedding",
          [](const py::object& self) {
            return float_view(self.cast<const PyPrediction&>().prediction.defect_embedding, 0, 0,
                              self);
          },
          "The embedding of the anomalous region (what 'closest known defects' compares).")
      .def_property_readonly("image",
                             [](const PyPrediction& p) {
                               return p.image.empty() ? py::object(py::none()) : py::str(p.image);
                             })
      .def_property_readonly(
          "error",
          [](const PyPrediction& p) {
            return p.error.empty() ? py::object(py::none()) : py::str(p.error);
          },
          "Why the image could not be read (in a list of several), or None.")
      .def("__repr__", [](const PyPrediction& p) {
        if (!p.error.empty()) return "<patchvec.Prediction error: " + p.error + ">";
        char text[160];
        std::snprintf(text, sizeof text, "<patchvec.Prediction score=%.4f normalized=%.3f %s>",
                      p.prediction.score, p.prediction.normalized,
                      pv::verdict_name(p.prediction.verdict));
        return std::string(text);
      });

  py::class_<PyTrainResult>(m, "TrainResult", "What patchvec.train() made.")
      .def_readonly("model", &PyTrainResult::model)
      .def_readonly("summary", &PyTrainResult::summary,
                    "patchvec train --json's entry: fit, thresholds, metrics, notes.")
      .def_readonly("evaluation", &PyTrainResult::evaluation,
                    "patchvec eval --json's report on the test split, or None.");

  const auto fit_arguments =
      [](std::string category, std::string backbone, std::optional<std::string> weights,
         double coreset_ratio, std::string threshold, std::uint64_t seed, std::optional<int> tile,
         int tile_overlap, double tile_scale, int image_size, int crop_size, std::string precision,
         int batch_size, std::optional<std::string> max_memory, bool evaluate) {
        return FitArguments{std::move(category),
                            std::move(backbone),
                            std::move(weights),
                            coreset_ratio,
                            std::move(threshold),
                            seed,
                            tile,
                            tile_overlap,
                            tile_scale,
                            image_size,
                            crop_size,
                            std::move(precision),
                            batch_size,
                            std::move(max_memory),
                            evaluate};
      };
  m.def(
      "train",
      [fit_arguments](const py::handle& images, std::string category, std::string backbone,
                      std::optional<std::string> weights, double coreset_ratio,
                      std::string threshold, std::uint64_t seed, std::optional<int> tile,
                      int tile_overlap, double tile_scale, int image_size, int crop_size,
                      std::string precision, int batch_size, std::optional<std::string> max_memory,
                      bool evaluate) {
        return train(images,
                     fit_arguments(std::move(category), std::move(backbone), std::move(weights),
                                   coreset_ratio, std::move(threshold), seed, tile, tile_overlap,
                                   tile_scale, image_size, crop_size, std::move(precision),
                                   batch_size, std::move(max_memory), evaluate));
      },
      py::arg("images"), py::kw_only(), py::arg("category") = "default",
      py::arg("backbone") = "wide_resnet50_2", py::arg("weights") = py::none(),
      py::arg("coreset_ratio") = 0.1, py::arg("threshold") = "far:0.01", py::arg("seed") = 0,
      py::arg("tile") = py::none(), py::arg("tile_overlap") = 32, py::arg("tile_scale") = 1.0,
      py::arg("image_size") = 256, py::arg("crop_size") = 224, py::arg("precision") = "fp32",
      py::arg("batch_size") = 8, py::arg("max_memory") = py::none(), py::arg("evaluate") = true);

  py::class_<pv::Model, ModelPtr>(m, "Model",
                                  "A PatchCore model of one category. Read-only once made: "
                                  "predict() may run on several threads at once.")
      .def_static(
          "load",
          [](const py::handle& path, std::optional<std::string> weights, int batch_size,
             std::optional<std::string> precision, std::optional<std::int64_t> max_pixels,
             const std::string& search) {
            pv::ModelLoadOptions options{.threads = threads(), .batch_size = batch_size};
            if (weights) options.weights = *weights;
            if (precision) options.precision = pv::parse_precision(*precision, "precision");
            options.search = pv::parse_search_method(search, "search");
            if (max_pixels) options.image_limits.max_pixels = *max_pixels;
            const auto file = to_path(path, "path");
            py::gil_scoped_release release;
            return std::make_shared<pv::Model>(pv::Model::load(file, options));
          },
          py::arg("path"), py::kw_only(), py::arg("weights") = py::none(),
          py::arg("batch_size") = 8, py::arg("precision") = py::none(),
          py::arg("max_pixels") = py::none(), py::arg("search") = "auto",
          "Reads a .pvm file. search: 'exact', 'shortlist' (image scores still exact; a map patch "
          "whose nearest bank patch is missed shows a larger distance) or 'auto' (shortlist for "
          "banks of 32,768 patches or more). Raises patchvec.ModelFileError for a file that is "
          "missing, corrupt or incompatible, patchvec.Error for weights this machine lacks.")
      .def(
          "save",
          [](const pv::Model& model, const py::handle& path) {
            const auto file = to_path(path, "path");
            py::gil_scoped_release release;
            model.save(file);
          },
          py::arg("path"), "Writes the model atomically (temporary file + rename).")
      .def_property_readonly("info", &model_info, "What the model file records, as a dict.")
      .def_property_readonly("category",
                             [](const pv::Model& model) { return model.info().category; })
      .def_property_readonly(
          "precision",
          [](const pv::Model& model) { return std::string(pv::precision_name(model.precision())); })
      .def_property_readonly("search",
                             [](const pv::Model& model) {
                               return std::string(pv::search_method_name(model.search_method()));
                             })
      .def(
          "predict",
          [](const pv::Model& model, const py::handle& images) {
            return predict(model, read_images(images, "images"));
          },
          py::arg("images"),
          "Scores images: a path, a folder, a uint8 array (H x W x 3 RGB; grey and RGBA are "
          "converted as image files are), or a list of paths or of arrays. One image gives one "
          "Prediction, a list or a folder a list.")
      .def(
          "embed",
          [](const pv::Model& model, const py::handle& images) {
            const Images read = read_images(images, "images");
            py::gil_scoped_release release;
            if (!read.paths.empty()) return embeddings_array(model.backbone().embed(read.paths));
            pv::PatchEmbeddings all;
            std::vector<const pv::Image*> pointers;
            for (const auto& image : read.arrays) pointers.push_back(&image);
            all.grid = model.backbone().grid();
            model.backbone().embed_each(
                pointers, [&](const pv::PatchEmbeddings& batch, std::span<const std::size_t>) {
                  all.count += batch.count;
                  all.values.insert(all.values.end(), batch.values.begin(), batch.values.end());
                });
            return embeddings_array(std::move(all));
          },
          py::arg("images"),
          "The model's backbone's patch embeddings, N x H x W x C float32 (with tiling N counts "
          "tiles): what `patchvec embed` writes.")
      .def("__repr__", [](const pv::Model& model) {
        const pv::ModelInfo& info = model.info();
        return "<patchvec.Model " + info.category + ": " + info.backbone.backbone + ", bank of " +
               std::to_string(info.bank_size) + " patches, " +
               pv::precision_name(model.precision()) + ">";
      });

  m.def(
      "evaluate",
      [](const pv::Model& model, const pv::Category& dataset, const py::object& overlays,
         const py::object& roc) {
        pv::EvaluateOptions options;
        if (!overlays.is_none()) options.overlays_dir = to_path(overlays, "overlays");
        if (!roc.is_none()) options.roc_png = to_path(roc, "roc");
        if (dataset.test.empty()) {
          throw pv::Error("evaluate: dataset " + dataset.name + " has no test split");
        }
        std::optional<pv::EvaluationReport> report;
        {
          py::gil_scoped_release release;
          report.emplace(pv::evaluate(model, dataset, options));
        }
        return to_python(pv::json::evaluation(*report));
      },
      py::arg("model"), py::arg("dataset"), py::kw_only(), py::arg("overlays") = py::none(),
      py::arg("roc") = py::none(),
      "Scores the dataset's labelled test split: what `patchvec eval --json` prints.");
}

}  // namespace pvpy
