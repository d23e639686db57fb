// The Python module's parts (patchvec._patchvec), one file each: errors and the process-wide
// settings (module.cpp), images from Python (images.cpp), models and predictions (model.cpp),
// stores and the inspector (store.cpp), the rest of the library's calls (extras.cpp).
//
// Every call that may take long (reading images, the network, a search, a store) releases the
// GIL, so that Python threads overlap; errors are the exceptions module.cpp registers.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <patchvec/image.h>
#include <patchvec/model.h>

namespace pvpy {

namespace py = pybind11;

void bind_errors(py::module_& m);
void bind_runtime(py::module_& m);
void bind_model(py::module_& m);
void bind_store(py::module_& m);
void bind_extras(py::module_& m);

// The threads set_threads() asked for (0: one per core), for every model loaded or fitted.
int threads();

// What a Python caller may pass as images: a path (str or os.PathLike; a folder stands for the
// images directly inside it), a numpy uint8 array (H x W grey, H x W x 1, 3 or 4), or a list or
// tuple of either kind (not both). Arrays are read where they are (no copy of theirs is made;
// PatchVec's float image is the one copy).
struct Images {
  std::vector<std::filesystem::path> paths;  // when files were given
  std::vector<pv::Image> arrays;             // when arrays were given
  bool single = false;                       // one image, not a list: answer with one result
  std::size_t size() const { return paths.empty() ? arrays.size() : paths.size(); }
};
// Throws TypeError / ValueError (one line, naming the argument) for anything else.
Images read_images(const py::handle& images, const char* argument);

// A path from str or os.PathLike; TypeError otherwise.
std::filesystem::path to_path(const py::handle& value, const char* argument);

// A JSON value as the Python object json.loads would give (dicts keep their order).
py::object to_python(const nlohmann::ordered_json& value);

// A float32 numpy array viewing `data` (rows x cols, or 1-d when cols is 0), which `owner` keeps
// alive.
py::array_t<float> float_view(const std::vector<float>& data, std::int64_t rows, std::int64_t cols,
                              const py::handle& owner);

// A prediction with what it needs to map itself onto the original image.
struct PyPrediction {
  pv::Prediction prediction;
  std::string image;  // the file's path, or "" for an array
  int width = 0;      // of the original image (0 for a file: read from it when needed)
  int height = 0;
  int image_size = 0;  // the model's resize and crop
  int crop_size = 0;
  std::string error;  // why the image could not be read (then no map)
};

// The model a Python object holds.
using ModelPtr = std::shared_ptr<pv::Model>;

}  // namespace pvpy
