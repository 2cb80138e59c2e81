#pragma once
// Pre-tokenizers of tokenizer.json files: Split (string or regex pattern, every behavior, invert),
// ByteLevel (GPT-2's regex and byte-to-unicode map), Metaspace and Sequence. Any other type is
// refused by name.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropekit/tokenize/regex_internal.hpp"

namespace ropekit {

// GPT-2's split regex, which ByteLevel applies when use_regex is true.
extern const char* const kGpt2SplitPattern;

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

class PreTokenizer {
  public:
    static PreTokenizer from_json(const nlohmann::json& spec, const std::string& source);

    void split_regex(const std::string& pattern, SplitBehavior behavior, const std::string& source);
    void byte_level(bool add_prefix_space, bool use_regex, const std::string& source);

    // Whether a ByteLevel step maps bytes to characters (tokens are then byte-level strings).
    bool is_byte_level() const;
    // The pieces the model sees for one segment of text; `at_start`: the segment begins the
    // input (Metaspace's prepend_scheme "first").
    void split(std::string_view text, bool at_start, std::vector<std::string>& pieces) const;

  private:
    enum class Kind { split, byte_level, metaspace };
    enum class Prepend { always, first, never };
    struct Step {
        Kind kind = Kind::split;
        std::shared_ptr<Regex> regex;  // split (also for string patterns) and byte_level
        SplitBehavior behavior = SplitBehavior::isolated;
        bool invert = false;
        bool add_prefix_space = false;  // byte_level
        std::string replacement;        // metaspace
        Prepend prepend = Prepend::always;
        bool split = true;
    };
    void add(const nlohmann::json& spec, const std::string& source);
    void add_split(const nlohmann::json& spec, const std::string& source);
    void add_metaspace(const nlohmann::json& spec, const std::string& source);
    void apply(const Step& step, std::string piece, bool first,
               std::vector<std::string>& out) const;
    void apply_split(const Step& step, const std::string& piece,
                     std::vector<std::string>& out) const;

    std::vector<Step> steps_;
    mutable std::vector<std::pair<std::size_t, std::size_t>> matches_;  // scratch
};

}  // namespace ropekit
