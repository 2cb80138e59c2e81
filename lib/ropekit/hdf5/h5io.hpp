#pragma once
// HDF5 input and output with the guarantees every tool relies on:
//  - "-" reads stdin (a regular file directly; a pipe spooled to an unlinked file in $TMPDIR);
//  - inputs are opened read-only and never modified, and may not reach outside themselves
//    (other files, plugins) unless allow_external_hdf5;
//  - f16, bf16 (uint16 tagged dtype="bfloat16", a 2-byte bf16 float, or 2-byte opaque), f32 and
//    f64 datasets read into float or double; integer data is refused with a clear error;
//  - reads can be hyperslabs, so large dumps stream;
//  - outputs are written to a temporary file in the target directory and renamed on commit(),
//    or built in memory and written to stdout for "-"; an unfinished output is removed;
//  - every output records provenance (ropekit_version, tool, command_line) and extends the root
//    "history" attribute carried over from its inputs.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ropekit/core/dtype.hpp"
#include "ropekit/core/output_path.hpp"
#include "ropekit/core/tensor.hpp"
#include "ropekit/hdf5/attr_value.hpp"

namespace ropekit {

struct DatasetInfo {
    Shape shape;
    DType dtype;
};

// Where a dataset's elements sit in its file (what h5py users wrap in numpy.memmap).
struct ContiguousStorage {
    std::uint64_t offset = 0;  // from the start of the file
    std::uint64_t bytes = 0;
    DType dtype = DType::f32;  // f32 or f16, IEEE little-endian
};

class H5Input {
  public:
    // path "-" reads standard input. Throws data_error naming the file if it is missing,
    // not HDF5, or truncated.
    static H5Input open(const std::string& path);
    // The same for an HDF5 file already in memory (fuzzers, tests); `name` is used in messages.
    static H5Input open_memory(const void* data, std::size_t size, const std::string& name);
    H5Input(H5Input&&) noexcept;
    H5Input& operator=(H5Input&&) noexcept;
    ~H5Input();

    const std::string& path() const;  // as given ("-" for stdin)
    const std::string& name() const;  // for messages: the path, or "<stdin>"

    bool has(const std::string& dataset) const;
    std::vector<std::string> dataset_names() const;  // every dataset, "a/b" without leading '/'
    // Shape and element type of a floating-point dataset; throws data_error if it is missing or
    // not floating point.
    DatasetInfo info(const std::string& dataset) const;

    // Dimension labels (H5DS, h5py's dset.dims[i].label), one per axis, "" where unlabelled.
    std::vector<std::string> axes(const std::string& dataset) const;
    // True for an integer dataset (read it with read_int64); false for anything else, and for
    // 16-bit integers read as bf16 bits (read_int16_as_bf16).
    bool is_integer(const std::string& dataset) const;

    // The dataset's bytes in the file when reading them there is provably what HDF5 would read:
    // a file opened by path (not stdin or memory), contiguous layout without filters or external
    // storage, IEEE little-endian f32 or f16 on a little-endian host, every element allocated
    // and inside the file. nullopt otherwise (read it through HDF5). data_error if missing.
    std::optional<ContiguousStorage> contiguous_storage(const std::string& dataset) const;

    Tensor<float> read_float(const std::string& dataset) const;
    Tensor<double> read_double(const std::string& dataset) const;
    Tensor<std::int64_t> read_int64(const std::string& dataset) const;  // any integer type
    // A hyperslab: `count[i]` elements from `start[i]` on every axis, row-major into `out`.
    void read_slab(const std::string& dataset, const Shape& start, const Shape& count,
                   float* out) const;
    void read_slab(const std::string& dataset, const Shape& start, const Shape& count,
                   double* out) const;

    // Attributes of an object ("/" for the root, or a dataset path). nullopt if absent.
    std::optional<AttrValue> attr(const std::string& object, const std::string& name) const;
    std::optional<std::string> attr_string(const std::string& object,
                                           const std::string& name) const;
    std::optional<double> attr_double(const std::string& object, const std::string& name) const;
    // A numeric attribute of any rank with its shape ({} for a scalar); data_error for strings.
    std::optional<Tensor<double>> attr_tensor(const std::string& object,
                                              const std::string& name) const;
    std::string history() const;  // root "history", or "" if none
    std::vector<std::string> attr_names(const std::string& object) const;

    struct Impl;

  private:
    explicit H5Input(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

class H5Output {
  public:
    // Refuses (usage error, exit 2) an existing output without force, and an output that is one
    // of the inputs. Throws data_error if the directory is missing or not writable.
    static H5Output create(const std::string& path, const WriteOptions& options);
    H5Output(H5Output&&) noexcept;
    H5Output& operator=(H5Output&&) noexcept;
    ~H5Output();  // removes the temporary file unless commit() succeeded

    const std::string& name() const;  // for messages

    // Whole datasets. `axes` names each axis (stored as HDF5 dimension labels, which h5py shows
    // as dset.dims[i].label); `units` becomes a "units" attribute when non-empty.
    // `stored` chooses the element type on disk for float data (f16 is rounded to nearest even).
    void write(const std::string& dataset, const Tensor<float>& t,
               const std::vector<std::string>& axes = {}, const std::string& units = "",
               DType stored = DType::f32);
    void write(const std::string& dataset, const Tensor<double>& t,
               const std::vector<std::string>& axes = {}, const std::string& units = "");
    void write(const std::string& dataset, const Tensor<std::int64_t>& t,
               const std::vector<std::string>& axes = {}, const std::string& units = "");

    // Streaming: create a chunked dataset, then fill it slab by slab.
    void create_dataset(const std::string& dataset, const Shape& shape, DType stored,
                        const std::vector<std::string>& axes = {}, const std::string& units = "");
    void write_slab(const std::string& dataset, const Shape& start, const Shape& count,
                    const float* data);

    void set_attr(const std::string& object, const std::string& name, const AttrValue& value);
    // A numeric attribute of the tensor's shape (e.g. a 2-D [layer, freq] table), f64.
    void set_attr(const std::string& object, const std::string& name, const Tensor<double>& value);

    // Provenance goes on the root; `history` is the inputs' history this output continues.
    void commit(const std::string& tool, const std::string& command_line,
                const std::string& history = "");
    // The same, but the finished file joins `batch` and is renamed into place by its commit(),
    // together with the run's other outputs. Standard output is written at once.
    void finish_into(OutputBatch& batch, const std::string& tool, const std::string& command_line,
                     const std::string& history = "");

    struct Impl;

  private:
    explicit H5Output(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Whether inputs may reach outside their own file: external raw-data storage, external links,
// virtual datasets whose sources are other files, filters loaded as plugins from
// HDF5_PLUGIN_PATH. By default (false) H5Input refuses such a file when it opens it, with a
// data_error naming the object and the mechanism, and HDF5 loads no plugins (--allow-external).
void allow_external_hdf5(bool allow);

// How 16-bit integer datasets are read, for the whole process: by default as bf16 bit patterns
// only when their `dtype` attribute names bfloat16 (refused otherwise, saying how to mark them);
// marked_or_option also names the tool's --bf16 in that refusal; all_bf16 (--bf16) reads every
// int16/uint16 dataset as bf16 bits, as PyTorch users save them (t.view(torch.int16)).
enum class Int16AsBf16 { marked, marked_or_option, all_bf16 };
void read_int16_as_bf16(Int16AsBf16 policy);

// Turns off HDF5's own error printing (we report errors ourselves) and its exit handler.
// Call before any other HDF5 function (Tool's constructor does). Idempotent.
void silence_hdf5_errors();

}  // namespace ropekit
