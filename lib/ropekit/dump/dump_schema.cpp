#include "ropekit/dump/dump_schema.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <variant>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/index_spec.hpp"

namespace ropekit {

const char* hook_name(Hook hook) {
    return enum_name(kHookDatasetNames, hook);
}

namespace {

std::optional<Hook> find_hook(const std::string& name) {
    const std::optional<Hook> hook = find_enum(kHookNames, name);
    return hook ? hook : find_enum(kHookDatasetNames, name);
}

}  // namespace

Hook parse_hook(const std::string& name, const std::string& option) {
    if (const std::optional<Hook> hook = find_hook(name)) return *hook;
    return parse_enum(kHookNames, name, option);  // the error, listing the choices
}

bool is_vector_hook(Hook hook) {
    return hook != Hook::pattern && hook != Hook::scores;
}

std::vector<Hook> parse_hooks(const std::string& list, const std::string& option) {
    std::vector<Hook> hooks;
    const auto add = [&hooks](Hook h) {
        if (std::find(hooks.begin(), hooks.end(), h) == hooks.end()) hooks.push_back(h);
    };
    for (const std::string& word : split_list(list)) {
        if (word == "all") {
            for (const EnumSpelling<Hook>& h : kHookNames) add(h.value);
        } else if (const std::optional<Hook> hook = find_hook(word)) {
            add(*hook);
        } else {
            throw usage_error(fmt::format("{}: unknown value '{}' (expected {}, or all)", option,
                                          word, enum_choices(kHookNames)));
        }
    }
    return hooks;
}

std::string hook_dataset(std::size_t layer, Hook hook, const std::string& name_template) {
    std::string name = name_template;
    auto replace = [&name](const std::string& key, const std::string& value) {
        for (std::size_t pos; (pos = name.find(key)) != std::string::npos;) {
            name.replace(pos, key.size(), value);
        }
    };
    replace("{layer}", std::to_string(layer));
    replace("{hook}", hook_name(hook));
    return name;
}

std::vector<std::string> hook_axes(Hook hook) {
    if (is_vector_hook(hook)) return {"batch", "pos", "head", "dim"};
    return {"batch", "head", "query_pos", "key_pos"};
}

std::optional<double> read_rope_theta(const H5Input& in, std::optional<std::string>& unreadable) {
    const std::optional<AttrValue> value = in.attr("/", "rope_theta");
    const auto* text = value ? std::get_if<std::string>(&*value) : nullptr;
    if (!text) return in.attr_double("/", "rope_theta");
    char* end = nullptr;
    const double theta = std::strtod(text->c_str(), &end);
    while (end && *end == ' ') ++end;
    if (end == text->c_str() || *end != '\0' || !std::isfinite(theta)) {
        unreadable = *text;
        return std::nullopt;
    }
    return theta;
}

namespace {

// A frequency table: finite values >= 0 of the expected rank, at least one column.
void check_frequencies(const H5Input& in, const char* name, const Tensor<double>& t,
                       std::size_t rank) {
    const std::string where = std::string("/@") + name;
    if (t.shape.size() != rank || t.size() == 0) {
        throw data_error(
            in.name(), where,
            fmt::format("expected a {}-D table of inverse frequencies{}, found shape {}", rank,
                        rank == 2 ? " [n_layers, rotary_dim/2]" : "", shape_string(t.shape)));
    }
    for (double v : t.data) {
        if (!std::isfinite(v) || v < 0) {
            throw data_error(in.name(), where,
                             fmt::format("expected finite values >= 0 (rad/token), found {}", v));
        }
    }
}

void read_frequency_tables(const H5Input& in, DumpAttributes& a) {
    if (auto table = in.attr_tensor("/", "rope_inv_freq")) {
        check_frequencies(in, "rope_inv_freq", *table, 1);
        a.rope_inv_freq = table->data;
    }
    if (auto table = in.attr_tensor("/", "layer_rope_inv_freq")) {
        check_frequencies(in, "layer_rope_inv_freq", *table, 2);
        a.layer_rope_inv_freq = std::move(*table);
    }
}

}  // namespace

DumpAttributes read_dump_attributes(const H5Input& in) {
    DumpAttributes a;
    a.rope_theta = read_rope_theta(in, a.unreadable_rope_theta);
    if (auto layout = in.attr_string("/", "rope_layout")) {
        a.rope_layout = find_enum(kLayoutNames, *layout);
        if (!a.rope_layout) {
            throw data_error(in.name(), "/@rope_layout",
                             fmt::format("expected 'half' or 'interleaved', found '{}'", *layout));
        }
    }
    if (auto rotary = in.attr_double("/", "rotary_dim")) {
        if (*rotary <= 0 || *rotary != static_cast<double>(static_cast<std::size_t>(*rotary))) {
            throw data_error(in.name(), "/@rotary_dim", "expected a positive whole number");
        }
        a.rotary_dim = static_cast<std::size_t>(*rotary);
    }
    if (auto bos = in.attr_double("/", "bos")) {
        if (*bos != 0 && *bos != 1) throw data_error(in.name(), "/@bos", "expected 0 or 1");
        a.bos = static_cast<int>(*bos);
    }
    a.model = in.attr_string("/", "model");
    a.p = in.attr_double("/", "p");
    if (auto scale = in.attr_double("/", "attn_scale")) {
        if (!(*scale > 0) || !std::isfinite(*scale)) {
            throw data_error(in.name(), "/@attn_scale", "expected a positive finite number");
        }
        a.attn_scale = *scale;
    }
    read_frequency_tables(in, a);
    return a;
}

std::optional<std::vector<double>> stored_frequencies(const DumpAttributes& a, std::size_t layer,
                                                      const std::string& file) {
    if (const auto& table = a.layer_rope_inv_freq) {
        const std::size_t rows = table->shape[0], width = table->shape[1];
        if (layer >= rows) {
            throw data_error(file, "/@layer_rope_inv_freq",
                             fmt::format("{} rows, but layer {} was asked for (expected a row "
                                         "per layer of the model)",
                                         rows, layer));
        }
        const auto row = table->data.begin() + static_cast<std::ptrdiff_t>(layer * width);
        return std::vector<double>(row, row + static_cast<std::ptrdiff_t>(width));
    }
    return a.rope_inv_freq;
}

void write_dump_attributes(H5Output& out, const DumpAttributes& a) {
    if (a.rope_theta) out.set_attr("/", "rope_theta", *a.rope_theta);
    if (a.rope_layout) out.set_attr("/", "rope_layout", layout_name(*a.rope_layout));
    if (a.rotary_dim) out.set_attr("/", "rotary_dim", static_cast<std::int64_t>(*a.rotary_dim));
    if (a.bos) out.set_attr("/", "bos", static_cast<std::int64_t>(*a.bos));
    if (a.model) out.set_attr("/", "model", *a.model);
    if (a.p) out.set_attr("/", "p", *a.p);
    if (a.attn_scale) out.set_attr("/", "attn_scale", *a.attn_scale);
}

}  // namespace ropekit
