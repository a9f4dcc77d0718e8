/*
 * espeak_align: synthesise sentences with eSpeak NG and report word and phoneme events with
 * their sample positions. A separate program, so that GPL code (libespeak-ng, GPL-3.0-or-later)
 * is never linked into the audiosae library: audiosae runs it as a subprocess.
 *
 * Build (the setup script does this; needs `apt-get install espeak-ng libespeak-ng-dev`):
 *   gcc -O2 -Wall -o "$AUDIOSAE_CACHE/bin/espeak_align" tools/espeak-align/espeak_align.c -lespeak-ng
 *
 * Usage:
 *   espeak_align --voice VOICE --rate WPM --out DIR [--mnemonic] < sentences.tsv
 *   espeak_align --version
 *
 * Input: one sentence per line, "ID<TAB>TEXT" (ID: [A-Za-z0-9._-]+). For each line it writes
 *   DIR/ID.wav  mono 16-bit PCM at espeak's native rate (22050 Hz)
 *   DIR/ID.tsv  events, one per line, tab-separated:
 *     rate      <sample_rate>
 *     voice     <voice> <rate_wpm>
 *     text      <text>
 *     word      <sample> <text_position (1-based characters)> <length (characters)>
 *     phoneme   <sample> <name: IPA by default, eSpeak mnemonic with --mnemonic>
 *     end       <sample>          end of the sentence (espeakEVENT_END)
 *     samples   <n>               total samples written to the WAV
 *   Sample positions come from the events' audio_position (milliseconds) times the rate.
 * and prints "ok ID <samples>" to stdout. Exit status 0 if every line was synthesised.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <espeak-ng/speak_lib.h>

static short *g_buf;
static size_t g_len, g_cap;
static FILE *g_tsv;
static int g_rate;

static long ms_to_sample(int ms) { return (long)((double)ms * g_rate / 1000.0 + 0.5); }

static int synth_callback(short *wav, int numsamples, espeak_EVENT *events) {
    if (wav && numsamples > 0) {
        if (g_len + (size_t)numsamples > g_cap) {
            size_t cap = g_cap ? g_cap : 1 << 16;
            while (cap < g_len + (size_t)numsamples) cap *= 2;
            short *b = realloc(g_buf, cap * sizeof(short));
            if (!b) { fprintf(stderr, "espeak_align: out of memory\n"); return 1; }
            g_buf = b;
            g_cap = cap;
        }
        memcpy(g_buf + g_len, wav, (size_t)numsamples * sizeof(short));
        g_len += (size_t)numsamples;
    }
    for (espeak_EVENT *e = events; e && e->type != espeakEVENT_LIST_TERMINATED; e++) {
        switch (e->type) {
        case espeakEVENT_WORD:
            fprintf(g_tsv, "word\t%ld\t%d\t%d\n", ms_to_sample(e->audio_position), e->text_position, e->length);
            break;
        case espeakEVENT_PHONEME: {
            char name[9];
            memcpy(name, e->id.string, 8);
            name[8] = 0;
            fprintf(g_tsv, "phoneme\t%ld\t%s\n", ms_to_sample(e->audio_position), name);
            break;
        }
        case espeakEVENT_END:
            fprintf(g_tsv, "end\t%ld\n", ms_to_sample(e->audio_position));
            break;
        default:
            break;
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

static int write_wav(const char *path, const short *s, size_t n, int rate) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint32_t data = (uint32_t)(n * 2);
    fwrite("RIFF", 1, 4, f); put_u32(f, 36 + data); fwrite("WAVE", 1, 4, f);
    fwrite("fmt ", 1, 4, f); put_u32(f, 16); put_u16(f, 1); put_u16(f, 1);
    put_u32(f, (uint32_t)rate); put_u32(f, (uint32_t)rate * 2); put_u16(f, 2); put_u16(f, 16);
    fwrite("data", 1, 4, f); put_u32(f, data);
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

int main(int argc, char **argv) {
    const char *voice = "en-us", *out = NULL;
    int rate_wpm = 175, ipa = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--voice") && i + 1 < argc) voice = argv[++i];
        else if (!strcmp(argv[i], "--rate") && i + 1 < argc) rate_wpm = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--mnemonic")) ipa = 0;
        else if (!strcmp(argv[i], "--version")) {
            const char *path = NULL;
            printf("espeak_align 1 (eSpeak NG %s)\n", espeak_Info(&path));
            return 0;
        } else {
            fprintf(stderr, "usage: espeak_align --voice VOICE --rate WPM --out DIR [--mnemonic] < ID<TAB>TEXT lines\n");
            return 2;
        }
    }
    if (!out) { fprintf(stderr, "espeak_align: --out DIR is required\n"); return 2; }
    int options = espeakINITIALIZE_PHONEME_EVENTS | (ipa ? espeakINITIALIZE_PHONEME_IPA : 0) | espeakINITIALIZE_DONT_EXIT;
    g_rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL, options);
    if (g_rate <= 0) { fprintf(stderr, "espeak_align: espeak_Initialize failed (is espeak-ng-data installed?)\n"); return 1; }
    if (espeak_SetVoiceByName(voice) != EE_OK) { fprintf(stderr, "espeak_align: unknown voice %s\n", voice); return 1; }
    espeak_SetParameter(espeakRATE, rate_wpm, 0);
    espeak_SetSynthCallback(synth_callback);

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int failed = 0;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        char *tab = strchr(line, '\t');
        if (!tab) { fprintf(stderr, "espeak_align: line without a tab: %s\n", line); failed = 1; continue; }
        *tab = 0;
        const char *id = line, *text = tab + 1;
        if (!valid_id(id)) { fprintf(stderr, "espeak_align: bad id %s\n", id); failed = 1; continue; }
        size_t plen = strlen(out) + strlen(id) + 8;
        char *wav_path = malloc(plen), *tsv_path = malloc(plen), *tmp_path = malloc(plen + 4);
        snprintf(wav_path, plen, "%s/%s.wav", out, id);
        snprintf(tsv_path, plen, "%s/%s.tsv", out, id);
        snprintf(tmp_path, plen + 4, "%s.tmp", tsv_path);
        g_tsv = fopen(tmp_path, "w");
        if (!g_tsv) { fprintf(stderr, "espeak_align: %s: %s\n", tmp_path, strerror(errno)); return 1; }
        fprintf(g_tsv, "rate\t%d\nvoice\t%s\t%d\ntext\t%s\n", g_rate, voice, rate_wpm, text);
        g_len = 0;
        espeak_ERROR err = espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, NULL);
        if (err == EE_OK) err = espeak_Synchronize();
        fprintf(g_tsv, "samples\t%zu\n", g_len);
        int bad = err != EE_OK || fclose(g_tsv) != 0 || write_wav(wav_path, g_buf, g_len, g_rate) != 0 ||
                  rename(tmp_path, tsv_path) != 0;
        if (bad) { fprintf(stderr, "espeak_align: failed on %s\n", id); failed = 1; }
        else printf("ok\t%s\t%zu\n", id, g_len);
        fflush(stdout);
        free(wav_path); free(tsv_path); free(tmp_path);
    }
    free(line);
    free(g_buf);
    espeak_Terminate();
    return failed;
}
