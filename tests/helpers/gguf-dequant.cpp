// gguf-dequant (test helper, not a product tool): every tensor of a GGUF file converted to float
// by ropekit's dequantizer (lib/ropekit/formats/ggml_types.hpp), a few rows at a time as a model
// loader reads them, into an HDF5 file (one dataset per tensor, [rows, dims[0]]: the outer axes
// flattened), so that tests can compare it with numpy's dequantization of the same bytes.
#include <CLI/CLI.hpp>

#include <algorithm>

#include "ropekit/cli/cli.hpp"
#include "ropekit/formats/ggml_types.hpp"
#include "ropekit/formats/gguf.hpp"
#include "ropekit/hdf5/h5io.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("gguf-dequant", "Write every tensor of a GGUF file as float, through ropekit.");
    tool.with_output();
    std::string input;
    std::uint64_t rows_per_read = 3;
    tool.require(tool.app().add_option("INPUT", input, "GGUF file"));
    tool.app().add_option("--rows", rows_per_read, "Rows converted per read (default 3)");
    tool.examples("  gguf-dequant model.gguf -o weights.h5\n");
    return tool.run(argc, argv, [&] {
        const RunContext context = tool.context();
        const GgufFile file = GgufFile::open(input);
        H5Output out = H5Output::create(context.output, context.write_options({input}));
        for (const GgufTensorInfo& t : file.tensors()) {
            require_dequantizable(file, t);
            const std::uint64_t rows = gguf_row_count(t), width = t.dims[0];
            out.create_dataset(t.name, {rows, width}, DType::f32, {"row", "column"});
            std::vector<float> buffer(rows_per_read * width);
            for (std::uint64_t first = 0; first < rows; first += rows_per_read) {
                const std::uint64_t n = std::min(rows_per_read, rows - first);
                dequantize_rows(file, t, first, n, buffer.data());
                out.write_slab(t.name, {first, 0}, {n, width}, buffer.data());
            }
        }
        out.commit(context.tool, context.command_line);
    });
}
