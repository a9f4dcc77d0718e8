/*
 * espeak_align: synthesise sentences with espeak-ng and record its word and phoneme events.
 *
 * A separate program (not linked into audiosae) because libespeak-ng is GPL-3.0.
 * Built by scripts/build_espeak_align.sh; run by `audiosae corpus demo`.
 *
 * Usage: espeak_align OUT_DIR < items.tsv      (or: espeak_align --version)
 *   Each input line is `id<TAB>voice<TAB>rate<TAB>text` (id: [A-Za-z0-9._-]+, voice e.g. en-us+f3,
 *   rate in words per minute).
 *   For each line it writes OUT_DIR/id.wav (16-bit mono PCM at espeak's rate, 22050 Hz) and
 *   OUT_DIR/id.events.tsv:
 *     # sample_rate=R samples=N
 *     word<TAB>SAMPLE<TAB>TEXT       start of a word (TEXT: the word as written in the input)
 *     phone<TAB>SAMPLE<TAB>IPA       start of a phoneme (IPA name; empty for a pause)
 *   SAMPLE = espeak's audio_position (ms) * R / 1000, rounded. Both files are written under a temporary
 *   name and renamed, then `ok<TAB>id<TAB>N` is printed on stdout.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <espeak-ng/speak_lib.h>

typedef struct {
    int16_t *samples;
    size_t n, cap;
    FILE *events;       /* events of the item being synthesised */
    const char *text;   /* its text, for word events */
    int rate;
    int failed;
} Item;

static Item item;

/* Byte offset of the 1-based character position `pos` in the UTF-8 string `s`. */
static size_t utf8_offset(const char *s, int pos) {
    size_t i = 0;
    int chars = 1;
    while (s[i] && chars < pos) {
        i++;
        while ((s[i] & 0xC0) == 0x80) i++;
        chars++;
    }
    return i;
}

/* Byte length of `len` characters starting at byte offset `start`. */
static size_t utf8_span(const char *s, size_t start, int len) {
    size_t i = start;
    for (int c = 0; s[i] && c < len; c++) {
        i++;
        while ((s[i] & 0xC0) == 0x80) i++;
    }
    return i - start;
}

static long to_sample(int ms) { return (long)((double)ms * item.rate / 1000.0 + 0.5); }

static int on_synth(short *wav, int n, espeak_EVENT *ev) {
    if (wav && n > 0) {
        if (item.n + (size_t)n > item.cap) {
            item.cap = (item.n + (size_t)n) * 2;
            int16_t *grown = realloc(item.samples, item.cap * sizeof(int16_t));
            if (!grown) { item.failed = 1; return 1; }
            item.samples = grown;
        }
        memcpy(item.samples + item.n, wav, (size_t)n * sizeof(int16_t));
        item.n += (size_t)n;
    }
    for (; ev && ev->type != espeakEVENT_LIST_TERMINATED; ev++) {
        if (ev->type == espeakEVENT_WORD) {
            size_t start = utf8_offset(item.text, ev->text_position);
            int len = (int)utf8_span(item.text, start, ev->length);
            fprintf(item.events, "word\t%ld\t%.*s\n", to_sample(ev->audio_position), len, item.text + start);
        } else if (ev->type == espeakEVENT_PHONEME) {
            fprintf(item.events, "phone\t%ld\t%.8s\n", to_sample(ev->audio_position), ev->id.string);
        }
    }
    return 0;
}

static void put_u32(FILE *f, uint32_t v) {
    unsigned char b[4] = {v & 255, (v >> 8) & 255, (v >> 16) & 255, (v >> 24) & 255};
    fwrite(b, 1, 4, f);
}

static void put_u16(FILE *f, uint16_t v) {
    unsigned char b[2] = {v & 255, (v >> 8) & 255};
    fwrite(b, 1, 2, f);
}

static int write_wav(const char *path, const int16_t *s, size_t n, int rate) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint32_t bytes = (uint32_t)(n * 2);
    fwrite("RIFF", 1, 4, f);
    put_u32(f, 36 + bytes);
    fwrite("WAVEfmt ", 1, 8, f);
    put_u32(f, 16);
    put_u16(f, 1); /* PCM */
    put_u16(f, 1); /* mono */
    put_u32(f, (uint32_t)rate);
    put_u32(f, (uint32_t)rate * 2);
    put_u16(f, 2);
    put_u16(f, 16);
    fwrite("data", 1, 4, f);
    put_u32(f, bytes);
    for (size_t i = 0; i < n; i++) put_u16(f, (uint16_t)s[i]);
    return fclose(f);
}

static int valid_id(const char *id) {
    if (!*id) return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '-'))
            return 0;
    return 1;
}

static int finish(const char *tmp, const char *final) {
    if (rename(tmp, final) != 0) {
        fprintf(stderr, "espeak_align: cannot rename %s to %s: %s\n", tmp, final, strerror(errno));
        return -1;
    }
    return 0;
}

static int synth_item(const char *dir, const char *id, const char *voice, int rate, const char *text) {
    char wav[4096], wav_tmp[4200], ev[4096], ev_tmp[4200];
    snprintf(wav, sizeof wav, "%s/%s.wav", dir, id);
    snprintf(wav_tmp, sizeof wav_tmp, "%s.tmp", wav);
    snprintf(ev, sizeof ev, "%s/%s.events.tsv", dir, id);
    snprintf(ev_tmp, sizeof ev_tmp, "%s.tmp", ev);
    if (espeak_SetVoiceByName(voice) != EE_OK) {
        fprintf(stderr, "espeak_align: %s: unknown voice '%s' (see `espeak-ng --voices`)\n", id, voice);
        return -1;
    }
    espeak_SetParameter(espeakRATE, rate, 0);
    /* Events go to a memory stream first: the header needs the final sample count. */
    char *body = NULL;
    size_t body_len = 0;
    item.events = open_memstream(&body, &body_len);
    item.text = text;
    item.n = 0;
    item.failed = 0;
    espeak_ERROR err = espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, NULL);
    if (err == EE_OK) err = espeak_Synchronize();
    fclose(item.events);
    if (err != EE_OK || item.failed || item.n == 0) {
        fprintf(stderr, "espeak_align: %s: synthesis failed (error %d, %zu samples)\n", id, err, item.n);
        free(body);
        return -1;
    }
    FILE *f = fopen(ev_tmp, "w");
    if (!f) {
        fprintf(stderr, "espeak_align: cannot write %s: %s\n", ev_tmp, strerror(errno));
        free(body);
        return -1;
    }
    fprintf(f, "# sample_rate=%d samples=%zu\n", item.rate, item.n);
    fwrite(body, 1, body_len, f);
    free(body);
    if (fclose(f) != 0 || write_wav(wav_tmp, item.samples, item.n, item.rate) != 0) {
        fprintf(stderr, "espeak_align: %s: cannot write its files in %s\n", id, dir);
        return -1;
    }
    if (finish(ev_tmp, ev) || finish(wav_tmp, wav)) return -1;
    printf("ok\t%s\t%zu\n", id, item.n);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        const char *data = NULL;
        printf("espeak_align 2 (eSpeak NG %s)\n", espeak_Info(&data));
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: espeak_align OUT_DIR < items.tsv  (lines: id<TAB>voice<TAB>rate<TAB>text)\n");
        return 2;
    }
    item.rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL,
                                  espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_PHONEME_IPA);
    if (item.rate <= 0) {
        fprintf(stderr, "espeak_align: espeak_Initialize failed (is espeak-ng-data installed?)\n");
        return 1;
    }
    espeak_SetSynthCallback(on_synth);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int status = 0;
    long lineno = 0;
    while ((len = getline(&line, &cap, stdin)) != -1) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        char *id = strtok(line, "\t"), *voice = strtok(NULL, "\t"), *rate = strtok(NULL, "\t");
        char *text = strtok(NULL, "");
        if (!id || !voice || !rate || !text || atoi(rate) <= 0 || !valid_id(id)) {
            fprintf(stderr, "espeak_align: stdin line %ld: expected id<TAB>voice<TAB>rate<TAB>text\n", lineno);
            status = 1;
            continue;
        }
        if (synth_item(argv[1], id, voice, atoi(rate), text) != 0) status = 1;
    }
    free(line);
    free(item.samples);
    espeak_Terminate();
    return status;
}
