// BERT's uncased WordPiece tokenizer for ASCII text, giving the same ids as HF `tokenizers` with
// BertNormalizer(clean_text, lowercase) + BertPreTokenizer + WordPiece("##", max 100 chars per word).
//
// ASCII only: for ASCII, the normaliser's Unicode steps (accent stripping, CJK spacing, Unicode
// lowercasing) are no-ops, so each byte's class decides everything. Callers send other text to HF
// `tokenizers`; tokenize() refuses a non-ASCII byte rather than guess.
//
// Per byte, as the reference does: control bytes (other than \t \n \r) and NUL are removed (so they
// join their neighbours), whitespace ends a word, ASCII punctuation is a word of its own, letters
// are lowercased. A word longer than 100 characters, or one with a piece not in the vocabulary, is
// one [UNK]; otherwise greedy longest-match-first pieces, "##" marking pieces inside a word.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rlf {

class WordPieceAscii {
 public:
  WordPieceAscii(std::vector<std::string> vocab, int32_t unk_id, size_t max_word_chars = 100,
                 std::string continuing_prefix = "##")
      : vocab_(std::move(vocab)), unk_id_(unk_id), max_word_chars_(max_word_chars) {
    if (vocab_.empty()) throw std::invalid_argument("the WordPiece vocabulary is empty");
    if (vocab_.size() > static_cast<size_t>(INT32_MAX))
      throw std::invalid_argument("the WordPiece vocabulary has too many tokens");
    if (unk_id < 0 || static_cast<size_t>(unk_id) >= vocab_.size())
      throw std::invalid_argument("the unknown-token id " + std::to_string(unk_id) + " is outside the vocabulary");
    if (max_word_chars == 0) throw std::invalid_argument("max_word_chars must be >= 1");
    for (size_t id = 0; id < vocab_.size(); ++id) {
      const std::string_view token = vocab_[id];
      const bool continuing = !continuing_prefix.empty() && token.size() > continuing_prefix.size() &&
                              token.substr(0, continuing_prefix.size()) == continuing_prefix;
      auto& map = continuing ? continuing_ : word_start_;
      // A token listed twice keeps its first id, as a JSON object's last key would not: the
      // vocabularies this reads (tokenizer.json) cannot list a token twice.
      map.emplace(continuing ? token.substr(continuing_prefix.size()) : token, static_cast<int32_t>(id));
    }
  }

  size_t vocab_size() const { return vocab_.size(); }
  int32_t unk_id() const { return unk_id_; }

  // Appends the ids of text[0, n) to out, at most max_tokens in all (the rest is not read).
  // Throws std::invalid_argument at a non-ASCII byte.
  void tokenize(const char* text, size_t n, size_t max_tokens, std::vector<int32_t>& out) const {
    std::string word;
    word.reserve(64);
    for (size_t i = 0; i < n && out.size() < max_tokens; ++i) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      if (c >= 0x80)
        throw std::invalid_argument("byte " + std::to_string(i) + " is not ASCII (the fast tokenizer takes ASCII only)");
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        flush(word, max_tokens, out);
      } else if (c < 0x20 || c == 0x7f) {
        continue;  // control characters are removed, joining their neighbours
      } else if (is_punctuation(c)) {
        flush(word, max_tokens, out);
        word.push_back(static_cast<char>(c));
        flush(word, max_tokens, out);
      } else {
        word.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c));
      }
    }
    flush(word, max_tokens, out);
  }

 private:
  static bool is_punctuation(unsigned char c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  }

  // The pieces of one word (then cleared), as many as fit under max_tokens.
  void flush(std::string& word, size_t max_tokens, std::vector<int32_t>& out) const {
    if (word.empty() || out.size() >= max_tokens) {
      word.clear();
      return;
    }
    const size_t first = out.size();
    bool unknown = word.size() > max_word_chars_;
    const std::string_view w = word;
    for (size_t start = 0; !unknown && start < w.size();) {
      const auto& map = start == 0 ? word_start_ : continuing_;
      size_t end = w.size();
      int32_t id = -1;
      for (; end > start; --end) {
        const auto it = map.find(w.substr(start, end - start));
        if (it != map.end()) {
          id = it->second;
          break;
        }
      }
      if (id < 0) {
        unknown = true;
        break;
      }
      out.push_back(id);
      start = end;
    }
    if (unknown) {
      out.resize(first);
      out.push_back(unk_id_);
    }
    if (out.size() > max_tokens) out.resize(max_tokens);
    word.clear();
  }

  std::vector<std::string> vocab_;  // owns the text the maps' keys view
  std::unordered_map<std::string_view, int32_t> word_start_, continuing_;
  int32_t unk_id_;
  size_t max_word_chars_;
};

}  // namespace rlf
