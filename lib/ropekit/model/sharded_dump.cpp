#include "ropekit/model/sharded_dump.hpp"

#include <cmath>
#include <cstdio>
#include <utility>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/output_path.hpp"

namespace ropekit {
namespace {

Tensor<std::int64_t> id_rows(const Tensor<std::int64_t>& ids, std::size_t begin, std::size_t end) {
    const std::size_t T = ids.shape[1];
    Tensor<std::int64_t> rows({end - begin, T});
    std::copy(ids.data.begin() + static_cast<std::ptrdiff_t>(begin * T),
              ids.data.begin() + static_cast<std::ptrdiff_t>(end * T), rows.data.begin());
    return rows;
}

void add_summary(DumpSummary& total, const DumpSummary& part) {
    const double before = static_cast<double>(total.sequences);
    const double n = static_cast<double>(part.sequences);
    total.mean_nll = (total.mean_nll * before + part.mean_nll * n) / (before + n);
    total.perplexity = std::exp(total.mean_nll);
    total.sequences += part.sequences;
    total.tokens = part.tokens;
    total.prefill_seconds += part.prefill_seconds;
    total.nll.insert(total.nll.end(), part.nll.begin(), part.nll.end());
}

// Commits every shard; if one fails, the ones already renamed into place are removed.
void commit_all(std::vector<H5Output>& outs, const std::vector<std::string>& paths,
                const RunContext& context) {
    std::size_t committed = 0;
    try {
        for (; committed < outs.size(); ++committed) {
            outs[committed].commit(context.tool, context.command_line);
        }
    } catch (...) {
        for (std::size_t i = 0; i < committed; ++i) std::remove(paths[i].c_str());
        throw;
    }
}

}  // namespace

std::vector<std::string> shard_paths(const std::string& output, std::size_t count) {
    const std::size_t slash = output.rfind('/'), dot = output.rfind('.');
    const bool has_extension =
        dot != std::string::npos && (slash == std::string::npos || dot > slash);
    const std::string stem = has_extension ? output.substr(0, dot) : output;
    const std::string extension = has_extension ? output.substr(dot) : ".h5";
    std::vector<std::string> paths;
    for (std::size_t i = 0; i < count; ++i) {
        paths.push_back(fmt::format("{}-{:05d}-of-{:05d}{}", stem, i, count, extension));
    }
    return paths;
}

DumpSummary write_sharded_dump(const LlamaModel& model, const Tensor<std::int64_t>& ids,
                               const DumpRequest& request, std::size_t shard_size,
                               const RunContext& context, const std::vector<std::string>& inputs,
                               const std::string& token_source) {
    if (context.output == "-") throw usage_error("--shard-size writes files: -o cannot be '-'");
    const std::size_t n = ids.shape[0], count = (n + shard_size - 1) / shard_size;
    const std::vector<std::string> paths = shard_paths(context.output, count);
    for (const std::string& path : paths) check_output_path(path, context.force, inputs);
    std::vector<H5Output> outs;
    DumpSummary total;
    for (std::size_t s = 0; s < count; ++s) {
        const std::size_t begin = s * shard_size, end = std::min(n, begin + shard_size);
        outs.push_back(H5Output::create(paths[s], context.write_options(inputs)));
        add_summary(total, write_model_dump(model, id_rows(ids, begin, end), request, outs.back(),
                                            [&](std::size_t done) {
                                                context.progress(begin + done, n, "sequences");
                                            }));
        outs.back().set_attr("/", "token_source", token_source);
    }
    commit_all(outs, paths, context);
    context.note(fmt::format("wrote {} shards {}", count, paths.front()));
    return total;
}

}  // namespace ropekit
