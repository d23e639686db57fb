// The rest of the library's calls for Python: anomalib checkpoints, weights, pictures.
#include <patchvec/anomalib.h>
#include <patchvec/embedder.h>
#include <patchvec/pictures.h>
#include <patchvec/weights.h>

#include "bindings.h"

namespace pvpy {
namespace {

py::dict weights_fit(const pv::WeightsFit& fit, const std::filesystem::path& file) {
  return py::dict(py::arg("file") = file.string(), py::arg("format") = fit.format,
                  py::arg("tensors") = fit.tensors, py::arg("sha256") = fit.sha256,
                  py::arg("backbone") = fit.backbone, py::arg("prefix") = fit.prefix,
                  py::arg("problems") = fit.problems, py::arg("fits") = fit.problems.empty());
}

}  // namespace

void bind_extras(py::module_& m) {
  m.def(
      "import_anomalib",
      [](const py::handle& checkpoint, const std::string& category, int image_size, int crop_size) {
        const auto file = to_path(checkpoint, "checkpoint");
        std::optional<pv::AnomalibImport> imported;
        {
          py::gil_scoped_release release;
          imported.emplace(pv::import_anomalib(file, {.category = category,
                                                      .image_size = image_size,
                                                      .crop_size = crop_size,
                                                      .threads = threads()}));
        }
        for (const auto& note : imported->notes) {
          py::module_::import("logging").attr("getLogger")("patchvec").attr("info")(note);
        }
        return std::make_shared<pv::Model>(std::move(imported->model));
      },
      py::arg("checkpoint"), py::arg("category"), py::kw_only(), py::arg("image_size") = 0,
      py::arg("crop_size") = -1,
      "A Model from an anomalib 1.x or 2.x PatchCore checkpoint (.ckpt), read without running "
      "it; scores as anomalib does. What it assumed is logged.");

  py::module_ weights = m.def_submodule("_weights");
  weights.def(
      "fetch",
      [](const std::string& what, const std::string& backbone, bool download,
         const py::object& cache_dir) {
        pv::FetchOptions options{.allow_download = download, .progress = false};
        if (!cache_dir.is_none()) options.cache_dir = to_path(cache_dir, "cache_dir");
        py::gil_scoped_release release;
        return pv::resolve_weights(what, backbone, options).string();
      },
      py::arg("what"), py::arg("backbone") = "wide_resnet50_2", py::arg("download") = true,
      py::arg("cache_dir") = py::none());
  weights.def(
      "verify",
      [](const py::handle& file, const std::string& backbone) {
        const auto path = to_path(file, "file");
        pv::WeightsFit fit;
        {
          py::gil_scoped_release release;
          fit = pv::check_weights(path, backbone);
        }
        return weights_fit(fit, path);
      },
      py::arg("file"), py::arg("backbone") = "");
  weights.def(
      "list",
      [](const py::object& cache_dir) {
        pv::FetchOptions options;
        if (!cache_dir.is_none()) options.cache_dir = to_path(cache_dir, "cache_dir");
        py::list out;
        for (const auto& named : pv::named_weights()) {
          out.append(py::dict(py::arg("name") = named.name, py::arg("backbone") = named.backbone,
                              py::arg("url") = named.url,
                              py::arg("description") = named.description,
                              py::arg("cached") = false));
        }
        std::vector<pv::CachedWeights> cached;
        {
          py::gil_scoped_release release;
          cached = pv::cached_weights(options);
        }
        py::list files;
        for (const auto& c : cached) {
          files.append(py::dict(py::arg("file") = c.file.string(), py::arg("url") = c.url,
                                py::arg("sha256") = c.sha256, py::arg("bytes") = c.bytes,
                                py::arg("fetched") = c.fetched));
        }
        return py::make_tuple(out, files);
      },
      py::arg("cache_dir") = py::none());
  weights.def("cache_dir", [] { return pv::weights_cache_dir().string(); });
  weights.def("backbones", &pv::supported_backbones);

  py::module_ pictures = m.def_submodule("_pictures");
  pictures.def(
      "overlay",
      [](const py::handle& image, const PyPrediction& prediction, const pv::Model& model,
         int height) {
        Images read = read_images(image, "image");
        if (!read.single) throw py::type_error("image: one image, not a list or folder");
        pv::Picture picture;
        {
          py::gil_scoped_release release;
          const pv::Image decoded = read.paths.empty() ? std::move(read.arrays.front())
                                                       : pv::load_image(read.paths.front());
          picture = pv::heatmap_overlay(decoded, model, prediction.prediction, height);
        }
        py::array_t<std::uint8_t> out({picture.height, picture.width, 3});
        std::copy(picture.rgb.begin(), picture.rgb.end(), out.mutable_data());
        return out;
      },
      py::arg("image"), py::arg("prediction"), py::arg("model"), py::arg("height") = 360);
}

}  // namespace pvpy
