// The only file that knows about Python: array checks, conversions, GIL handling.
// Every array crossing the boundary is checked here (dtype, shape, row layout) and read in place;
// nothing is silently cast or copied. Outputs are allocated with the GIL held, then the work runs
// with the GIL released. C++ std::invalid_argument becomes ValueError, std::runtime_error
// RuntimeError (pybind11's standard translation).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "backend.hpp"
#include "mf.hpp"
#include "sw.hpp"
#include "thread_pool.hpp"

namespace py = pybind11;
using namespace rlf;

namespace {

template <class T>
const char* dtype_name() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  if constexpr (std::is_same_v<T, int64_t>) return "int64";
  if constexpr (std::is_same_v<T, int32_t>) return "int32";
  if constexpr (std::is_same_v<T, int8_t>) return "int8";
  return "?";
}

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

template <class T>
void require_dtype(const py::array& a, const char* name) {
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name<T>() + ", got " +
                         std::string(py::str(a.dtype())) + " (convert with np.asarray(x, dtype=np." +
                         dtype_name<T>() + "))");
}

// A 2-D matrix whose rows are contiguous (rows may be further apart, e.g. a column slice).
struct Matrix {
  const float* data;
  size_t rows, cols, ld;
};

Matrix require_matrix(const py::array& a, const char* name, long expected_cols = -1) {
  require_dtype<float>(a, name);
  if (a.ndim() != 2)
    throw py::value_error(std::string(name) + " must be 2-D [n, dim], got shape " + shape_of(a) +
                          (a.ndim() == 1 ? " (for one vector use x[None, :])" : ""));
  if (expected_cols >= 0 && a.shape(1) != expected_cols)
    throw py::value_error(std::string(name) + " must have " + std::to_string(expected_cols) +
                          " columns (the embedding dimension), got shape " + shape_of(a));
  const py::ssize_t item = static_cast<py::ssize_t>(sizeof(float));
  const bool rows_contiguous = a.shape(0) == 0 || a.shape(1) <= 1 || a.strides(1) == item;
  const bool row_step_ok = a.shape(0) <= 1 || (a.strides(0) % item == 0 && a.strides(0) >= a.shape(1) * item);
  if (!rows_contiguous || !row_step_ok)
    throw py::value_error(std::string(name) + " must have contiguous rows, got strides (" +
                          std::to_string(a.strides(0)) + ", " + std::to_string(a.strides(1)) +
                          "); use np.ascontiguousarray(x)");
  const size_t ld = a.shape(0) <= 1 ? static_cast<size_t>(a.shape(1)) : static_cast<size_t>(a.strides(0) / item);
  return Matrix{static_cast<const float*>(a.data()), static_cast<size_t>(a.shape(0)),
                static_cast<size_t>(a.shape(1)), ld};
}

template <class T>
const T* require_vector(const py::array& a, const char* name, size_t expected_len) {
  require_dtype<T>(a, name);
  if (a.ndim() != 1 || static_cast<size_t>(a.shape(0)) != expected_len)
    throw py::value_error(std::string(name) + " must be 1-D of length " + std::to_string(expected_len) +
                          ", got shape " + shape_of(a));
  if (a.shape(0) > 1 && a.strides(0) != static_cast<py::ssize_t>(sizeof(T)))
    throw py::value_error(std::string(name) + " must be contiguous; use np.ascontiguousarray(x)");
  return static_cast<const T*>(a.data());
}

Storage parse_storage(const std::string& s) {
  if (s == "float32") return Storage::f32;
  if (s == "float16") return Storage::f16;
  if (s == "int8") return Storage::i8;
  throw py::value_error("storage must be 'float32', 'float16' or 'int8', got '" + s + "'");
}

// Allocates the output with the GIL held, then runs fn without it, unless the work is too small
// for releasing and re-acquiring the GIL to pay (a few mf decisions take well under a microsecond).
template <class Fn>
py::array_t<double> score_rows(const Matrix& q, size_t min_rows_to_release, Fn&& fn) {
  py::array_t<double> out(static_cast<py::ssize_t>(q.rows));
  double* dst = out.mutable_data();
  if (q.rows == 0) return out;
  if (q.rows < min_rows_to_release) {
    fn(q, dst);
  } else {
    py::gil_scoped_release release;
    fn(q, dst);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "routellm_fast's compiled core: scoring kernels of the mf and sw_ranking routers.";

  m.def("backend_info", [] {
    py::dict info;
    info["simd"] = active_kernels().name;
    info["simd_available"] = supported_simd();
    info["threads"] = ThreadPool::instance().num_threads();
#if defined(__clang__)
    info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    info["compiler"] = std::string("gcc ") + __VERSION__;
#endif
    return info;
  });
  m.def("set_simd", &set_simd, py::arg("name"));
  m.def(
      "set_num_threads", [](long n) {
        if (n < 1) throw py::value_error("number of threads must be >= 1, got " + std::to_string(n));
        ThreadPool::instance().set_num_threads(static_cast<size_t>(n));
      },
      py::arg("n"));
  m.def("get_num_threads", [] { return ThreadPool::instance().num_threads(); });

  m.def(
      "dedup_rows",
      [](const py::array& rows) {
        const Matrix x = require_matrix(rows, "rows");
        if (x.ld != x.cols) throw py::value_error("rows must be C-contiguous; use np.ascontiguousarray(x)");
        std::pair<std::vector<int64_t>, std::vector<int64_t>> result;
        {
          py::gil_scoped_release release;
          result = dedup_rows(x.data, x.rows, x.cols);
        }
        return py::make_tuple(py::array_t<int64_t>(result.first.size(), result.first.data()),
                              py::array_t<int64_t>(result.second.size(), result.second.data()));
      },
      py::arg("rows"));

  py::class_<SwArena>(m, "SwArena")
      .def(py::init([](const py::array& prompt_embeddings, const py::array& battle_prompt, const py::array& model_a,
                       const py::array& model_b, const py::array& outcome, int n_models, int num_tiers,
                       int anchor_model, double anchor_rating, const std::string& storage,
                       std::vector<std::string> model_names) {
             const Matrix emb = require_matrix(prompt_embeddings, "prompt_embeddings");
             if (emb.ld != emb.cols)
               throw py::value_error("prompt_embeddings must be C-contiguous; use np.ascontiguousarray(x)");
             const size_t n = static_cast<size_t>(battle_prompt.ndim() == 1 ? battle_prompt.shape(0) : 0);
             SwArenaSpec spec;
             spec.prompt_embeddings = emb.data;
             spec.n_prompts = emb.rows;
             spec.dim = emb.cols;
             spec.battle_prompt = require_vector<int64_t>(battle_prompt, "battle_prompt", n);
             spec.model_a = require_vector<int32_t>(model_a, "model_a", n);
             spec.model_b = require_vector<int32_t>(model_b, "model_b", n);
             spec.outcome = require_vector<int8_t>(outcome, "outcome", n);
             spec.n_battles = n;
             spec.n_models = n_models;
             spec.num_tiers = num_tiers;
             spec.anchor_model = anchor_model;
             spec.anchor_rating = anchor_rating;
             spec.storage = parse_storage(storage);
             spec.model_names = std::move(model_names);
             py::gil_scoped_release release;
             return new SwArena(spec);
           }),
           py::arg("prompt_embeddings"), py::arg("battle_prompt"), py::arg("model_a"), py::arg("model_b"),
           py::arg("outcome"), py::arg("n_models"), py::arg("num_tiers") = 10, py::arg("anchor_model") = -1,
           py::arg("anchor_rating") = 1082.0, py::arg("storage") = "float32",
           py::arg("model_names") = std::vector<std::string>{})
      .def(
          "score",
          [](const SwArena& arena, const py::array& queries, int strong_model, int weak_model) {
            const Matrix q = require_matrix(queries, "embeddings", static_cast<long>(arena.dim()));
            return score_rows(q, 0, [&](const Matrix& x, double* out) {
              arena.score(x.data, x.rows, x.ld, strong_model, weak_model, out);
            });
          },
          py::arg("embeddings"), py::arg("strong_model"), py::arg("weak_model"))
      .def_property_readonly("dim", &SwArena::dim)
      .def_property_readonly("n_prompts", &SwArena::n_prompts)
      .def_property_readonly("n_battles", &SwArena::n_battles)
      .def_property_readonly("storage", [](const SwArena& a) { return storage_name(a.storage()); })
      .def_property_readonly("storage_bytes", &SwArena::storage_bytes)
      .def_property_readonly("model_ratings",
                             [](const SwArena& a) { return py::array_t<double>(a.model_ratings().size(), a.model_ratings().data()); })
      .def_property_readonly("model_tier",
                             [](const SwArena& a) { return py::array_t<int>(a.model_tier().size(), a.model_tier().data()); });

  py::class_<MfPairScorer>(m, "MfPairScorer")
      .def(py::init([](const py::array& model_embeddings, const py::object& text_projection,
                       const py::array& classifier, int strong_model, int weak_model) {
             const Matrix p = require_matrix(model_embeddings, "model_embeddings");
             if (p.ld != p.cols) throw py::value_error("model_embeddings must be C-contiguous");
             MfWeights w;
             w.model_embeddings = p.data;
             w.num_models = static_cast<int>(p.rows);
             w.hidden = static_cast<int>(p.cols);
             w.text_dim = w.hidden;
             if (!text_projection.is_none()) {
               const Matrix proj = require_matrix(text_projection.cast<py::array>(), "text_projection");
               if (proj.ld != proj.cols) throw py::value_error("text_projection must be C-contiguous");
               if (static_cast<int>(proj.rows) != w.hidden)
                 throw py::value_error("text_projection must have " + std::to_string(w.hidden) +
                                       " rows (the hidden size), got " + std::to_string(proj.rows));
               w.text_projection = proj.data;
               w.text_dim = static_cast<int>(proj.cols);
             }
             w.classifier = require_vector<float>(classifier, "classifier", static_cast<size_t>(w.hidden));
             return new MfPairScorer(w, strong_model, weak_model);
           }),
           py::arg("model_embeddings"), py::arg("text_projection"), py::arg("classifier"), py::arg("strong_model"),
           py::arg("weak_model"))
      .def(
          "score",
          [](const MfPairScorer& s, const py::array& queries) {
            const Matrix q = require_matrix(queries, "embeddings", s.text_dim());
            return score_rows(q, 64, [&](const Matrix& x, double* out) { s.score(x.data, x.rows, x.ld, out); });
          },
          py::arg("embeddings"))
      .def_property_readonly("text_dim", &MfPairScorer::text_dim);
}
