"""A seeded corpus of awkward captions for tokenizer parity tests."""

import random

WORDS = (
    "a photo of the cat dog bird on in with red blue green big small running "
    "jumping über café naïve résumé jalapeño façade coöperate Ærøskøbing "
    "東京 北京 夜景 한국어 日本語のテキスト Москва привет Αθήνα καλημέρα "
    "مرحبا नमस्ते हिन्दी ไทย ελληνικά straße ǅungla İstanbul ΣΊΣΥΦΟΣ "
    "don't it's we're they've I'm you'll he'd O'Neill rock'n'roll "
    "e-mail co-op x86_64 C++ #hashtag @user http://example.com/a?b=1&c=2 "
    "3.14159 1,000,000 2024-01-31 12:30pm 50% $9.99 €5 £3 ¥100 №7 ½ ² ⅓ "
    "😀 🐈 👍🏽 🇫🇷 ❤️ ✨ ☃ ♞ → ← ∑ ∞ ≠ ≤ ™ © ® ° ± × ÷ … — – « » ¿ ¡"
).split()
SEPARATORS = [" ", " ", " ", "  ", "\t", "\n", "\u00a0", "\u3000", "\u2009", " \r\n "]
PUNCTUATION = ["", "", ".", ",", "!", "?", "!!", "...", ":", ";", "'", '"', ")", "-"]


def caption_corpus(count=1200, seed=0):
    """`count` captions: mixed scripts, digits, emoji, odd spacing and case."""
    rng = random.Random(seed)
    corpus = ["", " ", "hello world", "HELLO World", "a" * 500, "\t\n"]
    corpus.append(" ".join(rng.choice(WORDS) for _ in range(300)))  # 300 words
    corpus.append("".join(rng.choice(WORDS) for _ in range(40)))  # no spaces
    while len(corpus) < count:
        words = []
        for _ in range(rng.randint(1, 25)):
            word = rng.choice(WORDS)
            word = rng.choice([word, word.upper(), word.title(), word.lower()])
            words.append(word + rng.choice(PUNCTUATION))
            words.append(rng.choice(SEPARATORS))
        if rng.random() < 0.2:
            words.insert(0, str(rng.randint(0, 10**rng.randint(1, 12))))
        corpus.append("".join(words))
    return corpus
