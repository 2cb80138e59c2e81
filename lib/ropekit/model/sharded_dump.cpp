#include "ropekit/model/sharded_dump.hpp"

#include <cmath>
#include <cstdio>
#include <exception>
#include <tuple>
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
    if (part.sequences == 0) return;
    const double before = static_cast<double>(total.sequences);
    const double n = static_cast<double>(part.sequences);
    total.mean_nll = (total.mean_nll * before + part.mean_nll * n) / (before + n);
    total.perplexity = std::exp(total.mean_nll);
    total.sequences += part.sequences;
    total.tokens = part.tokens;
    total.prefill_seconds += part.prefill_seconds;
    total.nll.insert(total.nll.end(), part.nll.begin(), part.nll.end());
}

// Part 0: the other parts' summaries (their counts, mean NLL and prefill time) added in part
// order.
void add_other_summaries(DumpSummary& total, const WorkShare& share) {
    const std::vector<std::vector<double>> parts =
        share.gather({static_cast<double>(total.sequences), static_cast<double>(total.tokens),
                      total.mean_nll, total.prefill_seconds});
    for (std::size_t p = 1; p < parts.size(); ++p) {
        DumpSummary part;
        part.sequences = static_cast<std::size_t>(parts[p][0]);
        part.tokens = static_cast<std::size_t>(parts[p][1]);
        part.mean_nll = parts[p][2];
        part.prefill_seconds = parts[p][3];
        add_summary(total, part);
    }
}

void remove_all(const std::vector<std::string>& paths) {
    for (const std::string& path : paths) std::remove(path.c_str());
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

ShardPlan plan_shards(const std::string& output, std::size_t sequences, std::size_t shard_size,
                      const WorkShare& share) {
    ShardPlan plan;
    if (shard_size > 0) {
        for (std::size_t begin = 0; begin < sequences; begin += shard_size) {
            plan.starts.push_back(begin);
        }
        plan.starts.push_back(sequences);
        std::tie(plan.first, plan.count) = share.sequences(plan.starts.size() - 1);
    } else {  // one shard per part that has sequences (with fewer sequences than parts, not all)
        plan.starts.push_back(0);
        for (std::size_t part = 0; part < share.parts; ++part) {
            const std::size_t end = sequences * (part + 1) / share.parts;
            if (part == share.part) {
                plan.first = plan.starts.size() - 1;
                plan.count = end > plan.starts.back() ? 1 : 0;
            }
            if (end > plan.starts.back()) plan.starts.push_back(end);
        }
    }
    plan.paths = shard_paths(output, plan.starts.size() - 1);
    return plan;
}

DumpSummary write_sharded_dump(const LlamaModel& model, const Tensor<std::int64_t>& ids,
                               std::size_t ids_first, const DumpRequest& request,
                               const ShardPlan& plan, const RunContext& context,
                               const std::vector<std::string>& inputs,
                               const std::string& token_source, const WorkShare& share) {
    if (context.output == "-")
        throw usage_error("--shard-size and mpirun write shard files: -o cannot be '-'");
    const std::vector<std::string> mine(
        plan.paths.begin() + static_cast<std::ptrdiff_t>(plan.first),
        plan.paths.begin() + static_cast<std::ptrdiff_t>(plan.first + plan.count));
    for (const std::string& path : mine) check_output_path(path, context.force, inputs);
    std::vector<H5Output> outs;
    DumpSummary total;
    const std::size_t n = plan.starts.back(), count = plan.paths.size();
    for (std::size_t s = plan.first; s < plan.first + plan.count; ++s) {
        const std::size_t begin = plan.starts[s], end = plan.starts[s + 1];
        outs.push_back(H5Output::create(plan.paths[s], context.write_options(inputs)));
        const Tensor<std::int64_t> rows = id_rows(ids, begin - ids_first, end - ids_first);
        add_summary(total,
                    write_model_dump(model, rows, request, outs.back(), [&](std::size_t done) {
                        context.progress(begin + done, n, "sequences");
                    }));
        outs.back().set_attr("/", "token_source", token_source);
    }
    if (share.gather) add_other_summaries(total, share);
    std::exception_ptr failure;
    try {
        commit_all(outs, mine, context);
    } catch (...) {
        failure = std::current_exception();  // commit_all removed this part's shards
    }
    if (!share.agree && failure) std::rethrow_exception(failure);
    if (share.agree) {
        try {
            share.agree(failure);
        } catch (...) {
            if (!failure) remove_all(mine);
            throw;
        }
    }
    context.note(fmt::format("wrote {} shards {}", count, plan.paths.front()));
    return total;
}

}  // namespace ropekit
