// Vector stores (the embedded file, PostgreSQL + pgvector) and the inspector, for Python.
#include <map>

#include <patchvec/dataset.h>
#include <patchvec/indexing.h>
#include <patchvec/inspection.h>
#include <patchvec/inspector.h>
#include <patchvec/json.h>
#include <patchvec/store.h>

#include "bindings.h"

namespace pvpy {
namespace {

using StorePtr = std::shared_ptr<pv::VectorStore>;

py::object matches_list(const std::vector<pv::Match>& matches) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& match : matches) out.push_back(pv::json::match(match));
  return to_python(out);
}

pv::InspectOptions inspect_options(std::size_t k, std::optional<double> min_similarity,
                                   bool report) {
  pv::InspectOptions options;
  options.k = k;
  options.min_similarity = min_similarity;
  options.report = report;
  return options;
}

// Inspections of images (files in batches, or arrays one by one) as `patchvec search --json`
// prints them: one dict, or a list for a list.
py::object inspect(const pv::Inspector& inspector, const std::string& category,
                   const py::handle& images, const pv::InspectOptions& options) {
  const Images read = read_images(images, "images");
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  {
    py::gil_scoped_release release;
    if (!read.paths.empty()) {
      for (const pv::Inspected& inspected : inspector.inspect(category, read.paths, options)) {
        out.push_back(pv::json::inspection(inspected.inspection));
      }
    } else {
      for (std::size_t i = 0; i < read.arrays.size(); ++i) {
        const std::string name = "array " + std::to_string(i);
        out.push_back(pv::json::inspection(
            inspector.inspect(category, read.arrays[i], name, options).inspection));
      }
    }
  }
  py::object result = to_python(out);
  if (read.single) return result[py::int_(0)];
  return result;
}

pv::ReportResolution resolution_of(const std::string& resolution, std::string defect,
                                   std::string note, std::string by) {
  return {.resolution = pv::parse_resolution(resolution),
          .defect = std::move(defect),
          .note = std::move(note),
          .by = std::move(by)};
}

// The decided report (json::report), with the id of the image the decision stored.
py::dict resolved_dict(const pv::ResolvedReport& resolved) {
  py::dict out = to_python(pv::json::report(resolved.report));
  out["image_id"] = resolved.image_id;
  return out;
}

std::map<std::string, pv::ServedModel> served(const py::handle& models) {
  std::map<std::string, pv::ServedModel> out;
  const auto add = [&](const ModelPtr& model) {
    const std::string& category = model->info().category;
    if (!out.emplace(category, pv::ServedModel{.model = model}).second) {
      throw py::value_error("models: two models of category " + category);
    }
  };
  if (py::isinstance<pv::Model>(models)) {
    add(models.cast<ModelPtr>());
  } else if (py::isinstance<py::dict>(models)) {
    for (const auto& [key, value] : models.cast<py::dict>()) add(value.cast<ModelPtr>());
  } else {
    for (const py::handle item : models) add(item.cast<ModelPtr>());
  }
  return out;
}

}  // namespace

void bind_store(py::module_& m) {
  py::class_<pv::VectorStore, StorePtr>(
      m, "Store",
      "Images' embeddings, labels and verdicts, the similarity search over them, and anomaly "
      "reports: the embedded store (a file) or PostgreSQL + pgvector. Safe to use from several "
      "threads.")
      .def_property_readonly("kind", &pv::VectorStore::kind)
      .def_property_readonly("location", &pv::VectorStore::location)
      .def(
          "index",
          [](pv::VectorStore& store, const pv::Model& model, const pv::Category& dataset) {
            pv::IndexReport report;
            {
              py::gil_scoped_release release;
              report = pv::index_category(model, dataset, store);
            }
            return py::dict(py::arg("images") = report.images,
                            py::arg("embed_s") = report.embed_seconds,
                            py::arg("load_s") = report.load_seconds);
          },
          py::arg("model"), py::arg("dataset"),
          "Predicts every image of the dataset and replaces the category's dataset images in the "
          "store (images added one at a time stay): `patchvec index`.")
      .def(
          "search",
          [](const StorePtr& store, const ModelPtr& model, const py::handle& images, std::size_t k,
             std::optional<double> min_similarity, bool report) {
            std::map<std::string, pv::ServedModel> models;
            models.emplace(model->info().category, pv::ServedModel{.model = model});
            const pv::Inspector inspector(std::move(models), store);
            return inspect(inspector, model->info().category, images,
                           inspect_options(k, min_similarity, report));
          },
          py::arg("model"), py::arg("images"), py::kw_only(), py::arg("k") = 10,
          py::arg("min_similarity") = py::none(), py::arg("report") = true,
          "Inspects images with the model against this store: the verdict and the k most "
          "similar normal images, or the closest known defects (an anomaly is reported to the "
          "store unless report=False). What `patchvec search --json` prints.")
      .def(
          "nearest",
          [](const pv::VectorStore& store,
             const py::array_t<float, py::array::c_style | py::array::forcecast>& query,
             std::size_t k, std::string category, std::optional<bool> anomalous) {
            if (query.ndim() != 1) throw py::value_error("query: a 1-d embedding, please");
            std::vector<pv::Match> matches;
            {
              py::gil_scoped_release release;
              matches = store.nearest(std::span(query.data(), query.size()), k,
                                      {.category = std::move(category), .anomalous = anomalous});
            }
            return matches_list(matches);
          },
          py::arg("query"), py::kw_only(), py::arg("k") = 10, py::arg("category") = "",
          py::arg("anomalous") = py::none(),
          "The k stored images most similar (cosine) to an embedding (Prediction.embedding).")
      .def(
          "reports",
          [](const pv::VectorStore& store, std::string category, std::optional<std::string> status,
             std::string since, std::size_t limit) {
            pv::ReportQuery query{
                .category = std::move(category), .since = std::move(since), .limit = limit};
            if (status) query.status = pv::parse_report_status(*status);
            std::vector<pv::AnomalyReport> reports;
            {
              py::gil_scoped_release release;
              reports = store.reports(query);
            }
            nlohmann::ordered_json out = nlohmann::ordered_json::array();
            for (const auto& report : reports) out.push_back(pv::json::report(report));
            return to_python(out);
          },
          py::arg("category") = "", py::kw_only(), py::arg("status") = py::none(),
          py::arg("since") = "", py::arg("limit") = 50,
          "Anomaly reports, newest first: `patchvec reports --json`.")
      .def(
          "resolve",
          [](pv::VectorStore& store, const pv::Model& model, std::int64_t report_id,
             const std::string& resolution, std::string defect, std::string note, std::string by) {
            const pv::ReportResolution decision =
                resolution_of(resolution, std::move(defect), std::move(note), std::move(by));
            return resolved_dict([&] {
              py::gil_scoped_release release;
              return pv::resolve_report(model, store, report_id, decision);
            }());
          },
          py::arg("model"), py::arg("report_id"), py::arg("resolution"), py::kw_only(),
          py::arg("defect") = "", py::arg("note") = "", py::arg("by") = "",
          "An operator's decision on a report: 'false_alarm' (the image joins the normal "
          "images) or 'defect' with its type. Raises NotFoundError, ConflictError (decided "
          "already) or Error.")
      .def("image_count", &pv::VectorStore::image_count, py::arg("category") = "",
           py::call_guard<py::gil_scoped_release>())
      .def("ping", &pv::VectorStore::ping, py::call_guard<py::gil_scoped_release>())
      .def("__repr__", [](const pv::VectorStore& store) {
        return "<patchvec.Store " + store.location() + ">";
      });

  m.def(
      "open_store",
      [](const py::handle& location, bool exact) -> StorePtr {
        const std::string text = to_path(location, "location").string();
        py::gil_scoped_release release;
        if (text.starts_with("postgresql://") || text.starts_with("postgres://") ||
            text.find('=') != std::string::npos) {
          return pv::open_postgres_store(text, exact);
        }
        return pv::open_embedded_store(text);
      },
      py::arg("location"), py::kw_only(), py::arg("exact") = false,
      "A PostgreSQL + pgvector store (a libpq URL postgresql://... or a key=value connection "
      "string; PG* variables fill in the rest) or the embedded store in a file.");

  py::class_<pv::Inspector, std::shared_ptr<pv::Inspector>>(
      m, "Inspector",
      "The models of several categories and one store, answering 'is this image normal, and "
      "what does it look like' for any of them (what `patchvec search` and `serve` use).")
      .def(py::init([](const py::handle& models, StorePtr store) {
             return std::make_shared<pv::Inspector>(served(models), std::move(store));
           }),
           py::arg("models"), py::arg("store"))
      .def(
          "inspect",
          [](const pv::Inspector& inspector, const std::string& category, const py::handle& images,
             std::size_t k, std::optional<double> min_similarity, bool report) {
            return inspect(inspector, category, images, inspect_options(k, min_similarity, report));
          },
          py::arg("category"), py::arg("images"), py::kw_only(), py::arg("k") = 10,
          py::arg("min_similarity") = py::none(), py::arg("report") = true,
          "What `patchvec search --json` prints for these images: one dict, or a list.")
      .def(
          "resolve",
          [](const pv::Inspector& inspector, std::int64_t report_id, const std::string& resolution,
             std::string defect, std::string note, std::string by) {
            const pv::ReportResolution decision =
                resolution_of(resolution, std::move(defect), std::move(note), std::move(by));
            return resolved_dict([&] {
              py::gil_scoped_release release;
              return inspector.resolve(report_id, decision);
            }());
          },
          py::arg("report_id"), py::arg("resolution"), py::kw_only(), py::arg("defect") = "",
          py::arg("note") = "", py::arg("by") = "");
}

}  // namespace pvpy
