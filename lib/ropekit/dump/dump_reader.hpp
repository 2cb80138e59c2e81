#pragma once
// Reading activation dumps (docs/formats.md, "Activation dumps") layer by layer and one batch
// slab at a time, so memory stays bounded by one sequence of one tensor whatever the file size.
//  - names: TransformerLens's by default; a template with {layer} (and {hook}), or one template
//    per hook ("q=model.layers.{layer}.q"); layers are discovered from the file;
//  - layouts: vector hooks in any order of the axes pos, head, dim and an optional batch
//    ("batch,pos,head,dim" default; "pos,head,dim"; "batch,head,pos,dim"...); patterns and
//    scores [batch, head, query_pos, key_pos], without batch when the vector axes have none;
//  - model: root attributes rope_theta, rope_layout, rotary_dim, bos, with overrides;
//  - validation: one-line data_errors naming file and dataset for wrong rank, zero-length axes,
//    integer data, q/k mismatches, kv heads not dividing heads, NaN/inf (with where).
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ropekit/core/tensor.hpp"
#include "ropekit/dump/dump_schema.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/rope/rope.hpp"

namespace ropekit {

// Where each hook's datasets are. Built from --name values by parse_dump_names.
struct DumpNames {
    std::string general = kDefaultNameTemplate;  // with {layer} and {hook}
    std::map<Hook, std::string> per_hook;        // overrides, with {layer}
    std::string template_for(Hook hook) const;
};

// Each value is "TEMPLATE" or "HOOK=TEMPLATE". A TEMPLATE with {hook} replaces the general
// template; one without names the tensor of `primary` (the hook the tool reads first), and is a
// usage error when the tool reads several kinds and none is primary.
DumpNames parse_dump_names(const std::vector<std::string>& values, std::optional<Hook> primary);

// The axis order of vector hooks: a permutation of pos, head, dim with an optional batch.
struct VectorAxes {
    std::vector<std::string> names{"batch", "pos", "head", "dim"};
    bool has_batch() const;
    std::size_t index(const std::string& axis) const;  // position in `names`
};
VectorAxes parse_vector_axes(const std::string& spec);  // "pos,head,dim"; usage_error if bad

struct DumpOverrides {
    std::optional<double> theta;
    std::optional<Layout> layout;
    std::optional<std::size_t> rotary_dim;
    std::optional<int> bos;
};

// How to read a dump, as the command line says it (cli/dump_options.hpp adds the options):
// --name values, --axes, and --theta, --layout, --rotary-dim, --bos overriding the dump's
// attributes (0, empty and -1 leave them alone).
struct DumpOptions {
    std::vector<std::string> names;
    std::string axes = "batch,pos,head,dim";
    double theta = 0;
    std::string layout;
    std::size_t rotary_dim = 0;
    int bos = -1;

    DumpOverrides overrides() const;  // usage_error for --theta <= 1 or an unknown --layout
};

// A stderr note when --exclude-bos and the dump's `bos` attribute disagree (bos = 1 without
// --exclude-bos, or --exclude-bos with bos = 0); "" when they agree or bos is unknown.
std::string bos_note(const DumpAttributes& attributes, bool exclude_bos);

struct VectorShape {
    std::size_t batch = 0, pos = 0, heads = 0, dim = 0;
};
struct PatternShape {
    std::size_t batch = 0, heads = 0, queries = 0, keys = 0;
};

// One dump in one or several files (shards, dump_files.hpp) concatenated along batch: shapes and
// sequence indices are over all of them; attributes are the first file's (shards agree).
// One sequence's bytes in a file: what DumpReader::sequence_in_place finds.
struct SequenceInPlace {
    std::string path, file_name;  // to open; for messages
    std::uint64_t offset = 0;     // from the start of the file
    std::uint64_t bytes = 0;
    DType dtype = DType::f32;  // f32 or f16, IEEE little-endian
};

class DumpReader {
  public:
    DumpReader(const H5Input& in, DumpNames names, VectorAxes axes, const DumpOverrides& overrides);
    DumpReader(const std::vector<H5Input>& shards, DumpNames names, VectorAxes axes,
               const DumpOverrides& overrides);

    const H5Input& input() const { return *shards_.front(); }  // the first file, for messages
    const DumpAttributes& attributes() const { return attributes_; }  // file + overrides
    const VectorAxes& axes() const { return axes_; }

    // Reads only sequences [first, first + count) of the dump (fewer at its end), numbered from 0:
    // one process's share when several split a dump (an MPI rank's).
    void restrict_sequences(std::size_t first, std::size_t count);

    // Layers that have `hook`, ascending, from the file's dataset names.
    std::vector<std::size_t> layers(Hook hook) const;
    bool has(std::size_t layer, Hook hook) const;
    std::string dataset(std::size_t layer, Hook hook) const;

    // Validated shapes (rank, no zero-length axis, floating point).
    VectorShape vector_shape(std::size_t layer, Hook hook) const;
    PatternShape pattern_shape(std::size_t layer, Hook hook) const;
    // Query and key shapes of a layer agree: batch, positions, head_dim, and kv heads divide
    // query heads. Returns heads / kv_heads.
    std::size_t check_query_key(std::size_t layer, Hook q, Hook k) const;

    // The frequency schedule of `layer` (the dump's layer number) for vectors of `head_dim` dims,
    // from the attributes: the layer's row of layer_rope_inv_freq, else rope_inv_freq, else
    // plain RoPE at rope_theta; --theta overrides all of them (plain RoPE at that base for every
    // layer). Layout default half, rotary_dim default head_dim (a table's 2 x its width). Theta
    // is needed only when `need_theta` and no table applies; without it the schedule's inv_freq
    // is empty. Throws data_error / usage_error for impossible combinations.
    Schedule schedule(std::size_t layer, std::size_t head_dim, bool need_theta) const;
    // Where schedule() takes the frequencies from: "layer_rope_inv_freq", "rope_inv_freq", or
    // "" (rope_theta or --theta).
    std::string frequency_source() const;

    // Sequence `batch` of a vector hook as [pos, head, dim] floats (whatever the stored order).
    // Throws data_error naming the first NaN/inf element (batch, pos, head, dim).
    void read_vectors(std::size_t layer, Hook hook, std::size_t batch, Tensor<float>& out) const;
    // Where sequence `batch` of a vector hook sits as one contiguous [pos, head, dim] block, in
    // whichever shard holds it: stored order [batch,] pos, head, dim and
    // H5Input::contiguous_storage says yes for that shard; nullopt otherwise. Readers of the
    // block check finiteness themselves (read_vectors names the culprit). Calls HDF5 (once per
    // shard and dataset), so the calling thread only.
    std::optional<SequenceInPlace> sequence_in_place(std::size_t layer, Hook hook,
                                                     std::size_t batch) const;
    // One [query_pos, key_pos] matrix of a pattern or scores hook. Non-finite values are allowed
    // above the diagonal only (scores store -inf there).
    void read_pattern(std::size_t layer, Hook hook, std::size_t batch, std::size_t head,
                      Tensor<float>& out) const;

  private:
    VectorShape shard_vector_shape(const H5Input& in, const std::string& name) const;
    PatternShape shard_pattern_shape(const H5Input& in, const std::string& name) const;
    // The shard holding global sequence `batch`, and the sequence's index within it.
    std::pair<const H5Input*, std::size_t> locate(const std::string& name, std::size_t batch) const;

    std::size_t restricted_batch(std::size_t batch) const;  // of the whole dump, to the share
    // Without --theta: layer_rope_inv_freq has a row for every layer in the file (data_error).
    void check_layer_table() const;

    // Where each (shard, dataset) stores its sequences, as sequence_in_place found it: looked up
    // once, not once per sequence (a dump of 20,000 short sequences spent 7 s in HDF5 on it).
    struct ShardStorage {
        std::optional<ContiguousStorage> storage;
        std::uint64_t per_sequence = 0;
    };
    mutable std::map<std::pair<const H5Input*, std::string>, ShardStorage> storage_cache_;

    std::vector<const H5Input*> shards_;
    std::size_t first_sequence_ = 0, sequence_count_ = static_cast<std::size_t>(-1);
    DumpNames names_;
    VectorAxes axes_;
    DumpAttributes attributes_;
    bool theta_override_ = false;
};

// The reader `options` describe. `primary`: the hook a plain --name TEMPLATE (without {hook})
// names; none when the tool reads several kinds of tensor.
DumpReader open_dump(const std::vector<H5Input>& shards, const DumpOptions& options,
                     std::optional<Hook> primary);

}  // namespace ropekit
