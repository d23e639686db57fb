// Images from Python: paths, folders and numpy arrays, checked as the library checks files.
#include <string>

#include <patchvec/dataset.h>

#include "bindings.h"

namespace pvpy {
namespace {

bool is_array(const py::handle& value) {
  return py::isinstance<py::array>(value);
}

pv::Image from_array(const py::handle& value, const std::string& name) {
  const auto array = py::reinterpret_borrow<py::array>(value);
  if (!array.dtype().is(py::dtype::of<std::uint8_t>())) {
    throw py::type_error(name + ": arrays must be uint8 (H x W x 3, RGB), got dtype " +
                         py::str(array.dtype()).cast<std::string>());
  }
  const py::ssize_t ndim = array.ndim();
  const py::ssize_t channels = ndim == 3 ? array.shape(2) : 1;
  if ((ndim != 2 && ndim != 3) || (channels != 1 && channels != 3 && channels != 4)) {
    std::string shape;
    for (py::ssize_t i = 0; i < ndim; ++i) {
      shape += (i ? " x " : "") + std::to_string(array.shape(i));
    }
    throw py::value_error(name +
                          ": arrays must be H x W (grey) or H x W x 1, 3 (RGB) or 4 (RGBA), got " +
                          (ndim == 0 ? std::string("a scalar") : shape));
  }
  if (array.shape(0) > std::numeric_limits<int>::max() ||
      array.shape(1) > std::numeric_limits<int>::max()) {
    throw py::value_error(name + ": the array is too large for an image");
  }
  const auto* data = static_cast<const std::uint8_t*>(array.data());
  const py::ssize_t channel_stride = ndim == 3 ? array.strides(2) : 0;
  // The limits of any image file (the model checks its own again before scoring).
  return pv::image_from_samples(data, static_cast<int>(array.shape(1)),
                                static_cast<int>(array.shape(0)), static_cast<int>(channels),
                                array.strides(0), array.strides(1), channel_stride, name);
}

}  // namespace

Images read_images(const py::handle& images, const char* argument) {
  Images out;
  std::vector<py::handle> items;
  if (py::isinstance<py::list>(images) || py::isinstance<py::tuple>(images)) {
    for (const py::handle item : images) items.push_back(item);
  } else {
    items.push_back(images);
    out.single = true;
  }
  bool arrays = false, paths = false;
  for (const py::handle item : items) (is_array(item) ? arrays : paths) = true;
  if (arrays && paths) {
    throw py::type_error(std::string(argument) + ": give paths or arrays, not both in one call");
  }
  if (arrays) {
    out.arrays.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
      const std::string name = out.single ? std::string(argument)
                                          : std::string(argument) + "[" + std::to_string(i) + "]";
      out.arrays.push_back(from_array(items[i], name));
    }
    return out;
  }
  std::vector<std::filesystem::path> given;
  given.reserve(items.size());
  for (const py::handle item : items) given.push_back(to_path(item, argument));
  if (out.single && std::filesystem::is_directory(given.front())) out.single = false;
  {
    py::gil_scoped_release release;
    out.paths = pv::expand_images(given);
  }
  if (out.paths.empty() && !items.empty()) {
    throw py::value_error(std::string(argument) + ": no images");
  }
  return out;
}

}  // namespace pvpy
