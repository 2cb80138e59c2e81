#include "ropekit/cli/tokenize_command.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/output_path.hpp"
#include "ropekit/core/sha256.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/tokenize/token_stream.hpp"
#include "ropekit/tokenize/tokenizer.hpp"

namespace ropekit {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool wants_hdf5(const TokenizeRequest& r, const std::string& output) {
    if (!r.format.empty()) return r.format == "h5";
    return ends_with(output, ".h5") || ends_with(output, ".hdf5");
}

std::string source_name(const std::string& path) {
    return path == "-" ? "<stdin>" : path;
}

// Rows of ids: one per input line, or one per window.
struct Rows {
    std::vector<std::vector<TokenId>> rows;
    std::vector<std::size_t> line_numbers;  // of each row, for error messages (0 for windows)
    std::size_t documents = 0, dropped = 0;
};

Rows encode_rows(const Tokenizer& tokenizer, const std::string& text, const TokenizeRequest& r) {
    const std::string source = source_name(r.text);
    Rows out;
    if (r.length > 0) {
        const TokenStream stream = encode_documents(tokenizer, text, r.whole, source);
        const Windows w = cut_windows(stream.ids, r.length, r.length, source);
        for (std::size_t k = 0; k < w.count; ++k) {
            const auto first = w.ids.begin() + static_cast<std::ptrdiff_t>(k * w.length);
            out.rows.emplace_back(first, first + static_cast<std::ptrdiff_t>(w.length));
            out.line_numbers.push_back(0);
        }
        out.documents = stream.documents;
        out.dropped = w.dropped;
        return out;
    }
    for_each_line(text, [&](std::size_t number, std::string_view line) {
        try {
            out.rows.push_back(r.plain ? tokenizer.encode_plain(line) : tokenizer.encode(line));
        } catch (const Error& e) {
            throw data_error(source, fmt::format("line {}", number), e.what());
        }
        out.line_numbers.push_back(number);
    });
    out.documents = out.rows.size();
    return out;
}

std::string ids_text(const std::vector<std::vector<TokenId>>& rows) {
    std::string out;
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i)
            fmt::format_to(std::back_inserter(out), i ? " {}" : "{}", row[i]);
        out += '\n';
    }
    return out;
}

void write_hdf5(const RunContext& context, const TokenizeRequest& r, const Tokenizer& tokenizer,
                const Rows& rows, const std::string& text) {
    if (rows.rows.empty())
        throw data_error(source_name(r.text), "", "expected some text, found none");
    const std::size_t length = rows.rows[0].size();
    for (std::size_t i = 1; i < rows.rows.size(); ++i) {
        if (rows.rows[i].size() != length) {
            throw data_error(source_name(r.text), fmt::format("line {}", rows.line_numbers[i]),
                             fmt::format("gives {} ids but line {} gives {}: an HDF5 'tokens' "
                                         "dataset is rectangular (use --length to cut windows)",
                                         rows.rows[i].size(), rows.line_numbers[0], length));
        }
    }
    if (length == 0) throw data_error(source_name(r.text), "", "every line gives 0 ids");
    Tensor<std::int64_t> ids({rows.rows.size(), length});
    for (std::size_t i = 0; i < rows.rows.size(); ++i) {
        std::copy(rows.rows[i].begin(), rows.rows[i].end(), ids.ptr() + i * length);
    }
    H5Output out = H5Output::create(context.output, context.write_options({r.tokenizer, r.text}));
    out.write("tokens", ids, {"batch", "pos"}, "token id");
    out.set_attr("/", "tokenizer", tokenizer.description());
    out.set_attr("/", "tokenizer_path", tokenizer.source());
    out.set_attr("/", "text_source", source_name(r.text));
    out.set_attr("/", "text_sha256", sha256_hex(text));
    out.set_attr("/", "documents", static_cast<std::int64_t>(rows.documents));
    if (r.length > 0) out.set_attr("/", "dropped_tokens", static_cast<std::int64_t>(rows.dropped));
    out.commit(context.tool, context.command_line);
}

std::vector<TokenId> parse_ids(std::string_view line, const std::string& source,
                               std::size_t number) {
    std::vector<TokenId> ids;
    for (std::size_t i = 0; i < line.size();) {
        if (line[i] == ' ' || line[i] == '\t' || line[i] == ',' || line[i] == '\r') {
            ++i;
            continue;
        }
        std::int64_t value = 0;
        std::size_t end = i;
        while (end < line.size() && line[end] >= '0' && line[end] <= '9' && value <= INT32_MAX) {
            value = value * 10 + (line[end++] - '0');
        }
        const bool separated = end == line.size() ||
                               std::string_view(" \t,\r").find(line[end]) != std::string_view::npos;
        if (end == i || !separated || value > INT32_MAX) {
            throw data_error(source, fmt::format("line {}", number),
                             "expected non-negative integer token ids");
        }
        ids.push_back(static_cast<TokenId>(value));
        i = end;
    }
    return ids;
}

std::string decode_lines(const Tokenizer& tokenizer, const std::string& text,
                         const TokenizeRequest& r) {
    const std::string source = source_name(r.text);
    std::string out;
    for_each_line(text, [&](std::size_t number, std::string_view line) {
        try {
            out += tokenizer.decode(parse_ids(line, source, number), r.skip_special);
        } catch (const Error& e) {
            if (std::string(e.what()).rfind(source, 0) == 0) throw;
            throw data_error(source, fmt::format("line {}", number), e.what());
        }
        out += '\n';
    });
    return out;
}

}  // namespace

void run_tokenize(const RunContext& context, const TokenizeRequest& r) {
    if (!r.format.empty() && r.format != "txt" && r.format != "h5") {
        throw usage_error("--format must be txt or h5");
    }
    if (r.decode && wants_hdf5(r, context.output))
        throw usage_error("--decode writes text, not HDF5");
    if (r.plain && r.length > 0) {
        throw usage_error(
            "--no-special and --length exclude each other: windows keep the separators");
    }
    // Refuse a bad output before the tokenizer takes seconds to load.
    if (context.output != "-")
        check_output_path(context.output, context.force, {r.tokenizer, r.text});
    const Tokenizer tokenizer = Tokenizer::open(r.tokenizer);
    context.note(fmt::format("{} ({})", tokenizer.description(), tokenizer.source()));
    const std::string text = read_text(r.text);
    if (r.decode) {
        write_text_output(context.output, decode_lines(tokenizer, text, r), context.force,
                          {r.tokenizer, r.text});
        return;
    }
    const auto start = std::chrono::steady_clock::now();
    const Rows rows = encode_rows(tokenizer, text, r);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::size_t tokens = 0;
    for (const auto& row : rows.rows) tokens += row.size();
    tokens += rows.dropped;  // windows leave the tail out
    context.note(fmt::format("encoded {:.2f} MB into {} tokens in {:.3f} s ({:.1f} MB/s)",
                             double(text.size()) / 1e6, tokens, seconds,
                             double(text.size()) / 1e6 / std::max(seconds, 1e-9)));
    if (wants_hdf5(r, context.output)) {
        write_hdf5(context, r, tokenizer, rows, text);
    } else {
        write_text_output(context.output, ids_text(rows.rows), context.force,
                          {r.tokenizer, r.text});
    }
    if (r.length > 0) {
        context.note(fmt::format("{} documents, {} windows of {} tokens, {} tokens left over",
                                 rows.documents, rows.rows.size(), r.length, rows.dropped));
    }
}

}  // namespace ropekit
