// The only file that knows about Python: array checks, conversions, GIL handling.
// Every array crossing the boundary is checked here (dtype, shape, row layout) and read in place;
// nothing is silently cast or copied. Outputs are allocated with the GIL held, then the work runs
// with the GIL released. C++ std::invalid_argument becomes ValueError, std::runtime_error
// RuntimeError (pybind11's standard translation). Every binding names a function of this file, so the
// module definition at the end reads as the API and nothing else.
//
// Pickling: SwArena and MfPairScorer pickle to a tuple (format, scalars..., numpy arrays...) of what
// the object is made of, never pointers, and unpickle to an object that scores bit for bit alike.
// The leading format number lets a later layout refuse older states by name; see *_state below.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "knn.hpp"
#include "mf.hpp"
#include "static_embed.hpp"
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
  if constexpr (std::is_same_v<T, uint32_t>) return "uint32";
  if constexpr (std::is_same_v<T, double>) return "float64";
  return "?";
}

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

py::ssize_t ssize(size_t n) { return static_cast<py::ssize_t>(n); }

// v (a Python int) as a long long in [lo, hi]; nothing when outside, however large v is.
std::optional<long long> int_in_range(py::handle v, long long lo, long long hi) {
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
  if (overflow || x < lo || x > hi) return std::nullopt;
  return x;
}

// Equal dtypes, byte order included. Not identity: an unpickled array has its own dtype object.
bool same_dtype(const py::dtype& a, const py::dtype& b) {
  return a.is(b) || py::detail::npy_api::get().PyArray_EquivTypes_(a.ptr(), b.ptr());
}

template <class T>
void require_dtype(const py::array& a, const char* name) {
  if (!same_dtype(a.dtype(), py::dtype::of<T>()))
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

// A matrix with no gaps between rows, for calls that take a bare pointer and a row count; `advice`
// ends the error message.
Matrix require_c_matrix(const py::array& a, const char* name, const char* advice) {
  const Matrix m = require_matrix(a, name);
  if (m.ld != m.cols) throw py::value_error(std::string(name) + " must be C-contiguous" + advice);
  return m;
}
constexpr const char* kUseContiguous = "; use np.ascontiguousarray(x)";

// A C-contiguous 2-D T array with `cols` columns (any when negative); `what` describes it in the error.
template <class T>
const T* require_c_array2d(const py::array& a, const char* name, long cols, const std::string& what) {
  require_dtype<T>(a, name);
  if (a.ndim() != 2 || (cols >= 0 && a.shape(1) != cols) || !(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be a C-contiguous " + what + ", got shape " + shape_of(a));
  return static_cast<const T*>(a.data());
}

// The length of a 1-D array, else 0, so that require_vector reports the shape it got.
size_t length_of(const py::array& a) { return a.ndim() == 1 ? static_cast<size_t>(a.shape(0)) : 0; }

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

// ---- pickle states ----------------------------------------------------------------------------

constexpr long long kStateFormat = 1;

// Reads one class's pickle state: a tuple of a fixed length whose first item is the format. Every
// item is checked by name before use: TypeError for a wrong type or dtype, ValueError otherwise.
class StateReader {
 public:
  StateReader(const py::object& state, const std::string& cls, size_t length) : cls_(cls) {
    if (!py::isinstance<py::tuple>(state))
      throw py::type_error(cls_ + " pickle state must be a tuple, got " + type_name(state));
    items_ = state.cast<py::tuple>();
    if (items_.empty()) throw py::value_error(cls_ + " pickle state is an empty tuple");
    const long long format = integer(0, "format", LLONG_MIN, LLONG_MAX);
    if (format != kStateFormat)
      throw py::value_error(cls_ + " pickle state has format " + std::to_string(format) +
                            ", but this routellm_fast reads format " + std::to_string(kStateFormat) +
                            " only; rebuild the object from its source data");
    if (items_.size() != length)
      throw py::value_error(cls_ + " pickle state (format " + std::to_string(kStateFormat) + ") must have " +
                            std::to_string(length) + " items, got " + std::to_string(items_.size()));
  }

  long long integer(size_t i, const char* name, long long lo, long long hi) const {
    const py::handle v = items_[i];
    if (!py::isinstance<py::int_>(v) || py::isinstance<py::bool_>(v))
      throw py::type_error(where(i, name) + " must be an int, got " + type_name(v));
    const std::optional<long long> x = int_in_range(v, lo, hi);
    if (!x)
      throw py::value_error(where(i, name) + " is " + std::string(py::str(v)) + ", outside [" + std::to_string(lo) +
                            ", " + std::to_string(hi) + "]");
    return *x;
  }

  std::string string(size_t i, const char* name) const {
    if (!py::isinstance<py::str>(items_[i]))
      throw py::type_error(where(i, name) + " must be a str, got " + type_name(items_[i]));
    return items_[i].cast<std::string>();
  }

  // A C-contiguous array of the given dtype and shape (-1: any length); returns it.
  py::array array(size_t i, const char* name, const py::dtype& dtype, std::vector<py::ssize_t> shape) const {
    const py::handle v = items_[i];
    if (!py::isinstance<py::array>(v))
      throw py::type_error(where(i, name) + " must be a numpy array, got " + type_name(v));
    py::array a = py::reinterpret_borrow<py::array>(v);
    if (!same_dtype(a.dtype(), dtype))
      throw py::type_error(where(i, name) + " must have dtype " + std::string(py::str(dtype)) + ", got " +
                           std::string(py::str(a.dtype())));
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (size_t d = 0; ok && d < shape.size(); ++d) ok = shape[d] < 0 || a.shape(d) == shape[d];
    if (!ok) {
      std::string want = "(";
      for (size_t d = 0; d < shape.size(); ++d)
        want += (d ? ", " : "") + (shape[d] < 0 ? std::string("n") : std::to_string(shape[d]));
      throw py::value_error(where(i, name) + " must have shape " + want + (shape.size() == 1 ? ",)" : ")") +
                            ", got " + shape_of(a));
    }
    if (!(a.flags() & py::array::c_style)) throw py::value_error(where(i, name) + " must be C-contiguous");
    return a;
  }

 private:
  std::string where(size_t i, const char* name) const {
    return cls_ + " pickle state item " + std::to_string(i) + " (" + name + ")";
  }
  static std::string type_name(py::handle v) { return Py_TYPE(v.ptr())->tp_name; }

  std::string cls_;
  py::tuple items_;
};

py::dtype storage_dtype(Storage s) {
  switch (s) {
    case Storage::f32: return py::dtype::of<float>();
    case Storage::f16: return py::dtype("float16");
    case Storage::i8: return py::dtype::of<int8_t>();
  }
  throw std::logic_error("unknown storage");
}

template <class T, class U>
py::array_t<T> array_of(const std::vector<U>& v) {
  py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

template <class T>
std::vector<T> vector_of(const py::array& a) {
  const T* p = static_cast<const T*>(a.data());
  return std::vector<T>(p, p + a.size());
}

// SwArena, format 1: (1, n_battles, storage, model_ratings f64[M], model_tier i32[M],
// pair_rows i32[R, 2], entry_begin i64[P + 1], entry_slot u32[E], entry_count f64[E],
// prompt_rows [P, dim] in the storage dtype (float32, float16 or int8, the stored bits),
// row_factor f64[P]). Built on demand: the arena keeps no copy for pickling.
py::tuple sw_arena_state(const SwArena& a) {
  const EncodedRows& rows = a.prompt_rows();
  py::array encoded(storage_dtype(a.storage()),
                    std::vector<py::ssize_t>{static_cast<py::ssize_t>(rows.view.rows), static_cast<py::ssize_t>(a.dim())});
  copy_rows_out(rows, encoded.mutable_data());
  py::array_t<int32_t> pairs(std::vector<py::ssize_t>{static_cast<py::ssize_t>(a.pair_rows().size()), 2});
  int32_t* pair = pairs.mutable_data();
  for (const PairRow& r : a.pair_rows()) {
    *pair++ = r.i;
    *pair++ = r.j;
  }
  return py::make_tuple(kStateFormat, a.n_battles(), storage_name(a.storage()), array_of<double>(a.model_ratings()),
                        array_of<int32_t>(a.model_tier()), pairs, array_of<int64_t>(a.entry_begin()),
                        array_of<uint32_t>(a.entry_slot()), array_of<double>(a.entry_count()), encoded,
                        array_of<double>(rows.row_factor));
}

SwArena* sw_arena_from_state(const py::object& state) {
  const StateReader st(state, "SwArena", 11);
  SwArenaParts parts;
  parts.n_battles = static_cast<size_t>(st.integer(1, "n_battles", 1, LLONG_MAX));
  const Storage storage = parse_storage(st.string(2, "storage"));
  const py::array ratings = st.array(3, "model_ratings", py::dtype::of<double>(), {-1});
  const py::ssize_t M = ratings.shape(0);
  const py::array tiers = st.array(4, "model_tier", py::dtype::of<int32_t>(), {M});
  const py::array pairs = st.array(5, "pair_rows", py::dtype::of<int32_t>(), {-1, 2});
  const py::array begin = st.array(6, "entry_begin", py::dtype::of<int64_t>(), {-1});
  const py::array slot = st.array(7, "entry_slot", py::dtype::of<uint32_t>(), {-1});
  const py::array count = st.array(8, "entry_count", py::dtype::of<double>(), {slot.shape(0)});
  const py::array rows = st.array(9, "prompt_rows", storage_dtype(storage), {-1, -1});
  const py::array factor = st.array(10, "row_factor", py::dtype::of<double>(), {rows.shape(0)});
  parts.ratings = vector_of<double>(ratings);
  parts.model_tier = vector_of<int32_t>(tiers);
  const int32_t* pair = static_cast<const int32_t*>(pairs.data());
  for (py::ssize_t r = 0; r < pairs.shape(0); ++r) parts.pair_rows.push_back(PairRow{pair[2 * r], pair[2 * r + 1]});
  for (int64_t b : vector_of<int64_t>(begin)) {
    if (b < 0) throw py::value_error("SwArena pickle state item 6 (entry_begin) has a negative offset");
    parts.entry_begin.push_back(static_cast<size_t>(b));
  }
  parts.entry_slot = vector_of<uint32_t>(slot);
  parts.entry_count = vector_of<double>(count);
  parts.prompts = restore_rows(rows.data(), static_cast<size_t>(rows.shape(0)), static_cast<size_t>(rows.shape(1)),
                               storage, vector_of<double>(factor), "arena state: prompt");
  return new SwArena(std::move(parts));
}

// MfPairScorer, format 1: (1, pair_vector f32[2, text_dim]), the rows hi and lo of its pair vector.
py::tuple mf_scorer_state(const MfPairScorer& s) {
  const size_t d = static_cast<size_t>(s.text_dim());
  py::array_t<float> v(std::vector<py::ssize_t>{2, static_cast<py::ssize_t>(d)});
  std::copy(s.hi(), s.hi() + d, v.mutable_data());
  std::copy(s.lo(), s.lo() + d, v.mutable_data() + d);
  return py::make_tuple(kStateFormat, v);
}

MfPairScorer* mf_scorer_from_state(const py::object& state) {
  const StateReader st(state, "MfPairScorer", 2);
  const py::array v = st.array(1, "pair_vector", py::dtype::of<float>(), {2, -1});
  const float* hi = static_cast<const float*>(v.data());
  const size_t d = static_cast<size_t>(v.shape(1));
  return new MfPairScorer(hi, hi + d, d);
}

// mf weights from the arrays of a checkpoint (pointers into them: they must outlive the call).
MfWeights mf_weights(const py::array& model_embeddings, const py::object& text_projection, const py::array& classifier) {
  const Matrix p = require_c_matrix(model_embeddings, "model_embeddings", "");
  MfWeights w;
  w.model_embeddings = p.data;
  w.num_models = static_cast<int>(p.rows);
  w.hidden = static_cast<int>(p.cols);
  w.text_dim = w.hidden;
  if (!text_projection.is_none()) {
    const Matrix proj = require_c_matrix(text_projection.cast<py::array>(), "text_projection", "");
    if (static_cast<int>(proj.rows) != w.hidden)
      throw py::value_error("text_projection must have " + std::to_string(w.hidden) + " rows (the hidden size), got " +
                            std::to_string(proj.rows));
    w.text_projection = proj.data;
    w.text_dim = static_cast<int>(proj.cols);
  }
  w.classifier = require_vector<float>(classifier, "classifier", static_cast<size_t>(w.hidden));
  return w;
}

// ---- GIL and outputs ---------------------------------------------------------------------------

// Runs fn (C++ only: no Python objects) with the GIL released, so other Python threads run meanwhile.
template <class Fn>
auto without_gil(Fn&& fn) -> decltype(fn()) {
  py::gil_scoped_release release;
  return fn();
}

// A new T array of `shape`, allocated with the GIL held (numpy needs it), then filled by fill(data):
// without the GIL when `release`, with it for work too small to pay for the round trip.
template <class T, class Fill>
py::array_t<T> filled(std::vector<py::ssize_t> shape, bool release, Fill&& fill) {
  py::array_t<T> out(std::move(shape));
  T* dst = out.mutable_data();
  if (release)
    without_gil([&] { fill(dst); });
  else
    fill(dst);
  return out;
}

// Below these batch sizes the GIL stays held: a few mf decisions take well under a microsecond, a
// few prompts' embeddings microseconds, less than releasing and re-acquiring it.
constexpr size_t kMfRowsToRelease = 64;
constexpr size_t kTextsToRelease = 8;

// A batch of query embeddings for a scorer of dimension dim.
Matrix require_queries(const py::array& queries, long dim) { return require_matrix(queries, "embeddings", dim); }

// float64 [n], one score per query. An empty batch returns at once, fill never called.
template <class Fill>
py::array_t<double> score_rows(const Matrix& q, size_t min_rows_to_release, Fill&& fill) {
  if (q.rows == 0) return py::array_t<double>(py::ssize_t{0});
  return filled<double>({ssize(q.rows)}, q.rows >= min_rows_to_release, std::forward<Fill>(fill));
}

// float64 [n, cols], per-model or per-tier scores of each query.
template <class Fill>
py::array_t<double> score_table(const Matrix& q, size_t cols, Fill&& fill) {
  return filled<double>({ssize(q.rows), ssize(cols)}, true, std::forward<Fill>(fill));
}

// A read-only view of memory that base owns; the array keeps base alive.
py::array readonly_view(py::dtype dtype, std::vector<py::ssize_t> shape, std::vector<py::ssize_t> strides,
                        const void* data, const py::object& base) {
  py::array arr(std::move(dtype), std::move(shape), std::move(strides), data, base);
  arr.attr("setflags")(py::arg("write") = false);
  return arr;
}

template <class T>
py::array readonly_view(const std::vector<T>& v, const py::object& base) {
  return readonly_view(py::dtype::of<T>(), {ssize(v.size())}, {ssize(sizeof(T))}, v.data(), base);
}

// ---- module functions --------------------------------------------------------------------------

py::dict backend_info() {
  py::dict info;
  info["simd"] = active_kernels().name;
  info["simd_available"] = supported_simd();
  const ThreadPool& pool = ThreadPool::instance();
  info["threads"] = pool.num_threads();
  info["threads_source"] = pool.source();  // affinity, hardware_concurrency, env or set_num_threads
  if (!pool.note().empty()) info["threads_note"] = pool.note();
#if defined(__clang__)
  info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("gcc ") + __VERSION__;
#endif
  return info;
}

// Takes any Python int, so that a huge one is a ValueError naming it, not an overflow TypeError.
void set_num_threads(const py::int_& n) {
  const std::optional<long long> v = int_in_range(n, 1, static_cast<long long>(kMaxThreads));
  if (!v)
    throw py::value_error("number of threads must be in [1, " + std::to_string(kMaxThreads) + "], got " +
                          std::string(py::str(n)));
  ThreadPool::instance().set_num_threads(static_cast<size_t>(*v));
}

size_t get_num_threads() { return ThreadPool::instance().num_threads(); }

// Spelled out (py::make_tuple's type) so that the docstring's signature names both arrays.
py::typing::Tuple<py::array_t<int64_t>, py::array_t<int64_t>> dedup_array_rows(const py::array& rows) {
  const Matrix x = require_c_matrix(rows, "rows", kUseContiguous);
  const auto [group, first] = without_gil([&] { return rlf::dedup_rows(x.data, x.rows, x.cols); });
  return py::make_tuple(array_of<int64_t>(group), array_of<int64_t>(first));
}

// ---- SwArena -----------------------------------------------------------------------------------

SwArena* sw_arena_new(const py::array& prompt_embeddings, const py::array& battle_prompt, const py::array& model_a,
                      const py::array& model_b, const py::array& outcome, int n_models, int num_tiers,
                      int anchor_model, double anchor_rating, const std::string& storage,
                      std::vector<std::string> model_names) {
  const Matrix emb = require_c_matrix(prompt_embeddings, "prompt_embeddings", kUseContiguous);
  const size_t n = length_of(battle_prompt);
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
  return without_gil([&] { return new SwArena(spec); });
}

py::array_t<double> sw_arena_score(const SwArena& arena, const py::array& queries, int strong_model, int weak_model) {
  const Matrix q = require_queries(queries, static_cast<long>(arena.dim()));
  return score_rows(q, 0, [&](double* out) { arena.score(q.data, q.rows, q.ld, strong_model, weak_model, out); });
}

py::array_t<double> sw_arena_score_ratings(const SwArena& arena, const py::array& queries) {
  const Matrix q = require_queries(queries, static_cast<long>(arena.dim()));
  return score_table(q, arena.n_players(), [&](double* out) { arena.score_ratings(q.data, q.rows, q.ld, out); });
}

py::array_t<double> sw_arena_score_counts(const SwArena& arena, const py::array& counts, int strong_model,
                                          int weak_model) {
  const size_t slots = arena.count_slots();
  const double* y = require_c_array2d<double>(counts, "counts", static_cast<long>(slots),
                                              "float64 array [n, " + std::to_string(slots) + "]");
  const size_t n = static_cast<size_t>(counts.shape(0));
  return filled<double>({ssize(n)}, true, [&](double* out) { arena.score_counts(y, n, strong_model, weak_model, out); });
}

// Views of the tables the arena was built into, for the GPU backend to copy once: both backends
// score from one build.
py::dict sw_arena_device_tables(const py::object& self) {
  const SwArena& a = self.cast<const SwArena&>();
  const RowsView& rows = a.prompt_rows().view;
  const py::ssize_t item = ssize(element_size(rows.storage));
  py::dict t;
  t["prompt_rows"] = readonly_view(storage_dtype(rows.storage), {ssize(rows.rows), ssize(rows.dim)},
                                   {ssize(rows.stride) * item, item}, rows.data, self);
  t["row_factor"] = readonly_view(a.prompt_rows().row_factor, self);
  t["entry_begin"] = readonly_view(a.entry_begin(), self);
  t["entry_slot"] = readonly_view(a.entry_slot(), self);
  t["entry_count"] = readonly_view(a.entry_count(), self);
  t["count_slots"] = a.count_slots();
  return t;
}

const char* sw_arena_storage(const SwArena& a) { return storage_name(a.storage()); }
py::array_t<double> sw_arena_model_ratings(const SwArena& a) { return array_of<double>(a.model_ratings()); }
py::array_t<int> sw_arena_model_tier(const SwArena& a) { return array_of<int>(a.model_tier()); }
py::array_t<int> sw_arena_model_player(const SwArena& a) { return array_of<int>(a.model_player()); }

// ---- mf ----------------------------------------------------------------------------------------

MfPairScorer* mf_scorer_new(const py::array& model_embeddings, const py::object& text_projection,
                            const py::array& classifier, int strong_model, int weak_model) {
  return new MfPairScorer(mf_weights(model_embeddings, text_projection, classifier), strong_model, weak_model);
}

py::array_t<double> mf_scorer_score(const MfPairScorer& s, const py::array& queries) {
  const Matrix q = require_queries(queries, s.text_dim());
  return score_rows(q, kMfRowsToRelease, [&](double* out) { s.score(q.data, q.rows, q.ld, out); });
}

MfModelScorer* mf_model_scorer_new(const py::array& model_embeddings, const py::object& text_projection,
                                   const py::array& classifier) {
  return new MfModelScorer(mf_weights(model_embeddings, text_projection, classifier));
}

py::array_t<double> mf_model_scorer_logits(const MfModelScorer& s, const py::array& queries) {
  const Matrix q = require_queries(queries, s.text_dim());
  return score_table(q, s.num_models(), [&](double* out) { s.logits(q.data, q.rows, q.ld, out); });
}

// ---- KnnIndex -----------------------------------------------------------------------------------

KnnIndex* knn_new(const py::array& embeddings, const py::array& labels, const std::string& storage) {
  const Matrix emb = require_c_matrix(embeddings, "embeddings", kUseContiguous);
  const float* y = require_c_array2d<float>(labels, "labels", -1, "float32 array [n, n_models]");
  if (static_cast<size_t>(labels.shape(0)) != emb.rows)
    throw py::value_error("labels must have one row per embedding (" + std::to_string(emb.rows) + "), got shape " +
                          shape_of(labels));
  const size_t models = static_cast<size_t>(labels.shape(1));
  const Storage s = parse_storage(storage);
  return without_gil([&] { return new KnnIndex(emb.data, emb.rows, emb.cols, y, models, s); });
}

// KnnIndex, format 1: (1, storage, rows [n, dim] in the storage dtype (the stored bits), row_factor
// f64[n], labels f32[n, n_models]).
py::tuple knn_state(const KnnIndex& index) {
  const EncodedRows& rows = index.rows();
  py::array encoded(storage_dtype(index.storage()), std::vector<py::ssize_t>{ssize(index.n_rows()), ssize(index.dim())});
  copy_rows_out(rows, encoded.mutable_data());
  py::array_t<float> labels(std::vector<py::ssize_t>{ssize(index.n_rows()), ssize(index.n_models())});
  std::copy(index.labels().begin(), index.labels().end(), labels.mutable_data());
  return py::make_tuple(kStateFormat, storage_name(index.storage()), encoded, array_of<double>(rows.row_factor), labels);
}

KnnIndex* knn_from_state(const py::object& state) {
  const StateReader st(state, "KnnIndex", 5);
  const Storage storage = parse_storage(st.string(1, "storage"));
  const py::array rows = st.array(2, "rows", storage_dtype(storage), {-1, -1});
  const py::array factor = st.array(3, "row_factor", py::dtype::of<double>(), {rows.shape(0)});
  const py::array labels = st.array(4, "labels", py::dtype::of<float>(), {rows.shape(0), -1});
  EncodedRows enc = restore_rows(rows.data(), static_cast<size_t>(rows.shape(0)), static_cast<size_t>(rows.shape(1)),
                                 storage, vector_of<double>(factor), "knn state: labelled prompt");
  return new KnnIndex(std::move(enc), static_cast<const float*>(labels.data()), static_cast<size_t>(labels.shape(1)));
}

size_t knn_n_labelled(const KnnIndex& index, const std::vector<int>& models) {
  return index.eligible_rows(models.data(), models.size()).size();
}

py::typing::Tuple<py::array_t<int64_t>, py::array_t<double>> knn_topk(const KnnIndex& index, const py::array& queries,
                                                                     size_t k, const std::vector<int>& models) {
  const Matrix q = require_queries(queries, static_cast<long>(index.dim()));
  py::array_t<int64_t> idx(std::vector<py::ssize_t>{ssize(q.rows), ssize(k)});
  py::array_t<double> sims(std::vector<py::ssize_t>{ssize(q.rows), ssize(k)});
  int64_t* i = idx.mutable_data();
  double* s = sims.mutable_data();
  without_gil([&] { index.topk(q.data, q.rows, q.ld, k, models.data(), models.size(), i, s); });
  return py::make_tuple(idx, sims);
}

py::array_t<double> knn_shares(const KnnIndex& index, const py::array& queries, size_t k, double temperature,
                               const std::vector<int>& models) {
  const Matrix q = require_queries(queries, static_cast<long>(index.dim()));
  return score_table(q, models.size(), [&](double* out) {
    index.shares(q.data, q.rows, q.ld, k, temperature, models.data(), models.size(), out);
  });
}

py::array_t<double> knn_win_rates(const KnnIndex& index, const py::array& queries, size_t k, double temperature,
                                  int strong_model, int weak_model) {
  const Matrix q = require_queries(queries, static_cast<long>(index.dim()));
  // An empty batch still checks k, the temperature and the models.
  if (q.rows == 0) {
    without_gil([&] { index.win_rates(q.data, 0, q.ld, k, temperature, strong_model, weak_model, nullptr); });
    return py::array_t<double>(py::ssize_t{0});
  }
  return score_rows(q, 0, [&](double* out) { index.win_rates(q.data, q.rows, q.ld, k, temperature, strong_model, weak_model, out); });
}

const char* knn_storage(const KnnIndex& index) { return storage_name(index.storage()); }
py::array_t<float> knn_labels(const KnnIndex& index) {
  py::array_t<float> out(std::vector<py::ssize_t>{ssize(index.n_rows()), ssize(index.n_models())});
  std::copy(index.labels().begin(), index.labels().end(), out.mutable_data());
  return out;
}

// ---- StaticEmbedder ----------------------------------------------------------------------------

StaticEmbedder* embedder_new(std::vector<std::string> vocab, const py::array& table, const py::array& scales,
                             int32_t unk_id, size_t max_tokens, bool normalize, size_t max_word_chars) {
  const int8_t* t = require_c_array2d<int8_t>(table, "table", -1, "2-D int8 array [vocab, dim]");
  const size_t rows = static_cast<size_t>(table.shape(0)), dim = static_cast<size_t>(table.shape(1));
  const float* s = require_vector<float>(scales, "scales", rows);
  WordPieceAscii tokenizer(std::move(vocab), unk_id, max_word_chars);
  return new StaticEmbedder(std::move(tokenizer), t, s, rows, dim, max_tokens, normalize);
}

py::array_t<float> embedder_embed(const StaticEmbedder& e, const std::vector<std::string>& texts) {
  return filled<float>({ssize(texts.size()), ssize(e.dim())}, texts.size() >= kTextsToRelease,
                       [&](float* out) { e.embed_texts(texts, out); });
}

py::array_t<float> embedder_embed_ids(const StaticEmbedder& e, const py::array& ids, const py::array& offsets) {
  if (offsets.ndim() != 1 || offsets.shape(0) < 1)
    throw py::value_error("offsets must be 1-D with n + 1 entries, got shape " + shape_of(offsets));
  const size_t n = static_cast<size_t>(offsets.shape(0) - 1);
  const int64_t* off = require_vector<int64_t>(offsets, "offsets", n + 1);
  const int32_t* tok = require_vector<int32_t>(ids, "ids", length_of(ids));
  if (off[n] != static_cast<int64_t>(ids.shape(0)))
    throw py::value_error("offsets must end at len(ids) = " + std::to_string(ids.shape(0)) + ", got " +
                          std::to_string(off[n]));
  return filled<float>({ssize(n), ssize(e.dim())}, true, [&](float* out) { e.embed_ids(tok, off, n, out); });
}

std::vector<int32_t> embedder_tokenize(const StaticEmbedder& e, const std::string& text) {
  std::vector<int32_t> ids;
  e.tokenizer().tokenize(text.data(), text.size(), e.max_tokens(), ids);
  return ids;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "routellm_fast's compiled core: scoring kernels of the mf, sw_ranking and knn routers, and the static embedder.";

  m.def("backend_info", &backend_info);
  m.def("set_simd", &set_simd, py::arg("name"));
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &get_num_threads);
  m.def("dedup_rows", &dedup_array_rows, py::arg("rows"));

  py::class_<SwArena>(m, "SwArena")
      .def(py::init(&sw_arena_new), py::arg("prompt_embeddings"), py::arg("battle_prompt"), py::arg("model_a"),
           py::arg("model_b"), py::arg("outcome"), py::arg("n_models"), py::arg("num_tiers") = 10,
           py::arg("anchor_model") = -1, py::arg("anchor_rating") = 1082.0, py::arg("storage") = "float32",
           py::arg("model_names") = std::vector<std::string>{})
      .def("score", &sw_arena_score, py::arg("embeddings"), py::arg("strong_model"), py::arg("weak_model"))
      .def_property_readonly("dim", &SwArena::dim)
      .def_property_readonly("n_prompts", &SwArena::n_prompts)
      .def_property_readonly("n_battles", &SwArena::n_battles)
      .def_property_readonly("storage", &sw_arena_storage)
      .def_property_readonly("storage_bytes", &SwArena::storage_bytes)
      .def_property_readonly("model_ratings", &sw_arena_model_ratings)
      .def_property_readonly("model_tier", &sw_arena_model_tier)
      .def("score_ratings", &sw_arena_score_ratings, py::arg("embeddings"))
      .def("score_counts", &sw_arena_score_counts, py::arg("counts"), py::arg("strong_model"), py::arg("weak_model"))
      .def("device_tables", &sw_arena_device_tables)
      .def_property_readonly("n_players", &SwArena::n_players)
      .def_property_readonly("model_player", &sw_arena_model_player)
      .def(py::pickle(&sw_arena_state, &sw_arena_from_state));

  py::class_<MfPairScorer>(m, "MfPairScorer")
      .def(py::init(&mf_scorer_new), py::arg("model_embeddings"), py::arg("text_projection"), py::arg("classifier"),
           py::arg("strong_model"), py::arg("weak_model"))
      .def("score", &mf_scorer_score, py::arg("embeddings"))
      .def_property_readonly("text_dim", &MfPairScorer::text_dim)
      .def(py::pickle(&mf_scorer_state, &mf_scorer_from_state));

  py::class_<MfModelScorer>(m, "MfModelScorer")
      .def(py::init(&mf_model_scorer_new), py::arg("model_embeddings"), py::arg("text_projection"),
           py::arg("classifier"))
      .def("logits", &mf_model_scorer_logits, py::arg("embeddings"))
      .def_property_readonly("num_models", &MfModelScorer::num_models)
      .def_property_readonly("text_dim", &MfModelScorer::text_dim);

  py::class_<KnnIndex>(m, "KnnIndex")
      .def(py::init(&knn_new), py::arg("embeddings"), py::arg("labels"), py::arg("storage") = "float32")
      .def_static("from_state", &knn_from_state, py::arg("state"))
      .def("n_labelled", &knn_n_labelled, py::arg("models"))
      .def("topk", &knn_topk, py::arg("embeddings"), py::arg("k"), py::arg("models"))
      .def("shares", &knn_shares, py::arg("embeddings"), py::arg("k"), py::arg("temperature"), py::arg("models"))
      .def("win_rates", &knn_win_rates, py::arg("embeddings"), py::arg("k"), py::arg("temperature"),
           py::arg("strong_model"), py::arg("weak_model"))
      .def_property_readonly("dim", &KnnIndex::dim)
      .def_property_readonly("n_rows", &KnnIndex::n_rows)
      .def_property_readonly("n_models", &KnnIndex::n_models)
      .def_property_readonly("storage", &knn_storage)
      .def_property_readonly("storage_bytes", &KnnIndex::storage_bytes)
      .def_property_readonly("labels", &knn_labels)
      .def(py::pickle(&knn_state, &knn_from_state));

  py::class_<StaticEmbedder>(m, "StaticEmbedder")
      .def(py::init(&embedder_new), py::arg("vocab"), py::arg("table"), py::arg("scales"), py::arg("unk_id"),
           py::arg("max_tokens") = 512, py::arg("normalize") = true, py::arg("max_word_chars") = 100)
      .def("embed", &embedder_embed, py::arg("texts"))
      .def("embed_ids", &embedder_embed_ids, py::arg("ids"), py::arg("offsets"))
      .def("tokenize", &embedder_tokenize, py::arg("text"))
      .def_property_readonly("dim", &StaticEmbedder::dim)
      .def_property_readonly("vocab_size", &StaticEmbedder::vocab_size)
      .def_property_readonly("max_tokens", &StaticEmbedder::max_tokens)
      .def_property_readonly("normalize", &StaticEmbedder::normalize);
}
