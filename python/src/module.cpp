// patchvec._patchvec: PatchVec's library for Python, one-to-one (docs/python.md). The package
// python/patchvec puts Python's conventions around it (logging, the submodules).
#include <memory>

#include <patchvec/embedder.h>
#include <patchvec/interrupt.h>
#include <patchvec/log.h>
#include <patchvec/store.h>
#include <patchvec/system.h>
#include <patchvec/version.h>
#include <patchvec/weights.h>

#include "bindings.h"

namespace pvpy {
namespace {

int g_threads = 0;

// The exception classes, created once at import.
struct Errors {
  py::object error, image_error, model_file_error, not_found, conflict, unavailable,
      weights_unavailable;
};
Errors* g_errors = nullptr;  // lives as long as the process (never freed: no GIL at exit)

const char* kind_name(pv::ImageError::Kind kind) {
  switch (kind) {
    case pv::ImageError::Kind::kUnreadable:
      return "unreadable";
    case pv::ImageError::Kind::kNotAnImage:
      return "not_an_image";
    case pv::ImageError::Kind::kTooLarge:
      return "too_large";
    case pv::ImageError::Kind::kDamaged:
      return "damaged";
  }
  return "damaged";
}

void raise(const py::object& type, const char* message, const char* attribute = nullptr,
           const char* value = nullptr) {
  py::object instance = type(message);
  if (attribute != nullptr) instance.attr(attribute) = value;
  PyErr_SetObject(type.ptr(), instance.ptr());
}

py::object new_error(py::module_& m, const char* name, py::handle base, const char* doc) {
  py::object type = py::reinterpret_steal<py::object>(PyErr_NewExceptionWithDoc(
      (std::string("patchvec.") + name).c_str(), doc, base.ptr(), nullptr));
  if (!type) throw py::error_already_set();
  m.attr(name) = type;
  return type;
}

// A Python callable that may be dropped on any thread: its reference is released under the GIL.
struct PyCallable {
  py::object function;
  explicit PyCallable(py::object f) : function(std::move(f)) {}
  ~PyCallable() {
    try {
      if (!Py_IsInitialized()) {
        function.release();  // the interpreter is gone: nothing to release it to
        return;
      }
      py::gil_scoped_acquire gil;
      function = py::object();
    } catch (...) {  // a destructor cannot report it; the reference is leaked at worst
    }
  }
};

}  // namespace

int threads() {
  return g_threads;
}

void bind_errors(py::module_& m) {
  g_errors = new Errors;
  Errors& e = *g_errors;
  e.error = new_error(m, "Error", PyExc_Exception,
                      "A failure the user can act on (pv::Error): the message names the file, "
                      "key or setting at fault.");
  e.image_error = new_error(m, "ImageError", e.error,
                            "An image that cannot be read (pv::ImageError); `kind` is "
                            "'unreadable', 'not_an_image', 'too_large' or 'damaged'.");
  e.model_file_error = new_error(m, "ModelFileError", e.error,
                                 "A model file that is missing, truncated, corrupt, invalid or "
                                 "incompatible (pv::ModelFileError).");
  e.not_found = new_error(m, "NotFoundError", e.error,
                          "A report, image or category that does not exist (pv::NotFoundError).");
  e.conflict = new_error(m, "ConflictError", e.error,
                         "A change that contradicts what is stored, e.g. resolving a report "
                         "twice (pv::ConflictError).");
  e.unavailable = new_error(m, "UnavailableError", e.error,
                            "The store cannot be reached now; the same call may succeed later "
                            "(pv::UnavailableError).");
  e.weights_unavailable =
      new_error(m, "WeightsUnavailable", e.error,
                "Weights named by URL or name that could not be brought onto this machine "
                "(pv::WeightsUnavailable); `reason` is the cause alone.");
  // NOLINTNEXTLINE(performance-unnecessary-value-param): pybind11's translator signature
  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    const Errors& e = *g_errors;
    try {
      std::rethrow_exception(p);
    } catch (const pv::Interrupted&) {
      PyErr_SetNone(PyExc_KeyboardInterrupt);
    } catch (const pv::ImageError& x) {
      raise(e.image_error, x.what(), "kind", kind_name(x.kind()));
    } catch (const pv::ModelFileError& x) {
      raise(e.model_file_error, x.what());
    } catch (const pv::NotFoundError& x) {
      raise(e.not_found, x.what());
    } catch (const pv::ConflictError& x) {
      raise(e.conflict, x.what());
    } catch (const pv::UnavailableError& x) {
      raise(e.unavailable, x.what());
    } catch (const pv::WeightsUnavailable& x) {
      raise(e.weights_unavailable, x.what(), "reason", x.reason().c_str());
    } catch (const pv::Error& x) {
      raise(e.error, x.what());
    }
  });
}

void bind_runtime(py::module_& m) {
  m.def(
      "set_threads",
      [](int n) {
        if (n < 0)
          throw py::value_error("set_threads: n must be 0 (one per core) or more, got " +
                                std::to_string(n));
        g_threads = n;
        pv::set_compute_threads(n);
      },
      py::arg("n"),
      "The threads PatchVec computes with, process-wide (0: one per core, the default).");
  m.def("get_threads", [] { return g_threads; });
  m.def(
      "_set_log_sink",
      [](py::object sink) {
        if (sink.is_none()) {
          pv::log::set_sink({});
          return;
        }
        auto callable = std::make_shared<PyCallable>(std::move(sink));
        pv::log::set_sink([callable](pv::log::Level level, std::string_view message) {
          if (!Py_IsInitialized()) return;
          py::gil_scoped_acquire gil;
          try {
            callable->function(level == pv::log::Level::kWarning ? 30 : 20,
                               py::str(message.data(), message.size()));
          } catch (py::error_already_set& e) {
            e.discard_as_unraisable("patchvec's log sink");
          }
        });
      },
      py::arg("sink"),
      "Sends PatchVec's messages to sink(level, message) (logging levels), or to stderr (None).");
  m.def("_set_quiet", &pv::log::set_quiet, py::arg("quiet"));
  // Ctrl-C: long calls ask between batches whether Python has a signal waiting (only the main
  // thread handles signals, so other threads' calls run to their end).
  pv::set_interrupt_check([] {
    if (!Py_IsInitialized()) return false;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return false;
    PyErr_Clear();  // raised again as KeyboardInterrupt when the call unwinds
    return true;
  });
  m.def("version", [] { return std::string(pv::version()); });
  m.def("blas_core", &pv::blas_core_name, "The kernels the loaded OpenBLAS uses.");
  // Debian's OpenBLAS may have chosen generic kernels when it loaded (pv::better_blas_core());
  // patchvec the program starts again with OPENBLAS_CORETYPE set, a module can only choose again.
  pv::switch_blas_core();
  m.def("cpu_has_native_bf16", &pv::cpu_has_native_bf16);
  m.def("cpu_has_native_int8", &pv::cpu_has_native_int8);
}

std::filesystem::path to_path(const py::handle& value, const char* argument) {
  if (py::isinstance<py::str>(value)) return std::filesystem::path(value.cast<std::string>());
  const py::object fspath = py::module_::import("os").attr("fspath");
  try {
    const py::object text = fspath(value);
    if (py::isinstance<py::str>(text)) return std::filesystem::path(text.cast<std::string>());
  } catch (py::error_already_set&) {
  }
  throw py::type_error(std::string(argument) + ": expected a path (str or os.PathLike), got " +
                       py::str(py::type::of(value).attr("__name__")).cast<std::string>());
}

py::object to_python(const nlohmann::ordered_json& value) {
  return py::module_::import("json").attr("loads")(value.dump());
}

py::array_t<float> float_view(const std::vector<float>& data, std::int64_t rows, std::int64_t cols,
                              const py::handle& owner) {
  py::array_t<float> view =
      cols == 0
          ? py::array_t<float>({static_cast<py::ssize_t>(data.size())},
                               {static_cast<py::ssize_t>(sizeof(float))}, data.data(), owner)
          : py::array_t<float>({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)},
                               {static_cast<py::ssize_t>(cols * sizeof(float)),
                                static_cast<py::ssize_t>(sizeof(float))},
                               data.data(), owner);
  view.attr("setflags")(py::arg("write") = false);  // a view of what PatchVec computed
  return view;
}

}  // namespace pvpy

PYBIND11_MODULE(_patchvec, m) {
  m.doc() = "PatchVec's C++ library (use the patchvec package, which wraps this module).";
  pvpy::bind_errors(m);
  pvpy::bind_runtime(m);
  pvpy::bind_model(m);
  pvpy::bind_store(m);
  pvpy::bind_extras(m);
}
