/*
 * model.h — internal: a model built from a model file: its parsed spec, its
 * variables (parameters, layer state, optimizer slots) by name, and its
 * compiled training and inference plans.
 */
#ifndef PLX_MODEL_H
#define PLX_MODEL_H

#include <cJSON.h>

#include "data/dataset.h"
#include "executor.h"
#include "layer_config.h"
#include "optimizer.h"

typedef enum loss_kind { LOSS_CROSS_ENTROPY = 0, LOSS_BCE, LOSS_MSE, LOSS_MAE, LOSS_HUBER } loss_kind;

typedef struct model_layer {
    const cJSON *obj;          /* the layer's object in spec_json */
    char *name;
    const layer_record *type;
    char **inputs;             /* layer names or "input"; NULL entries never */
    int32_t n_inputs;
    char *where;               /* "file: $.layers[i]" */
} model_layer;

typedef struct model_spec {
    char *name;
    uint64_t seed;
    int32_t input_ndim;
    int64_t input_shape[PLX_MAX_DIMS - 1];
    int64_t classes;
    model_layer *layers;
    int32_t n_layers;
    int32_t output_layer;      /* index of the layer giving logits */
    /* training */
    loss_kind loss;
    float label_smoothing;
    float huber_delta;
    optimizer_config opt;
    schedule sched;
    bool plateau_on_accuracy;
    int64_t batch_size;
    int64_t eval_batch_size;
    int32_t epochs;
    double val_split;
    bool shuffle;
    bool early_stopping;
    bool early_on_accuracy;
    int64_t early_patience;
    double early_min_delta;
    augment_options augment;
    /* data */
    char *data_format;         /* "idx" or "csv" */
    char *data_dir;
    char *train_images, *train_labels, *test_images, *test_labels; /* idx */
    char *train_csv, *test_csv, *label_column;                      /* csv */
    int32_t normalize;         /* 0 none, 1 from given mean/std, 2 from the training set's statistics */
    int64_t *class_subset;     /* data.classes: labels kept, in order (label class_subset[i] becomes i) */
    int32_t n_class_subset;
    int32_t n_norm;
    float norm_mean[16], norm_std[16];
    char **freeze;
    int32_t n_freeze;
    char *init_from;
    bool init_partial;
} model_spec;

typedef struct model_var {
    char *name;
    value_kind kind;   /* VALUE_PARAM or VALUE_STATE */
    bool trainable;
    plx_tensor *tensor;
} model_var;

typedef struct infer_plan {
    int64_t batch;
    plx_graph *graph;
    exec_plan *plan;
    int32_t x, logits;
    plx_tensor *x_tensor;
} infer_plan;

struct plx_model {
    plx_context *ctx;
    char *origin;
    char *spec_text;           /* the model file, stored in checkpoints */
    cJSON *spec_json;
    model_spec spec;
    model_var *vars;
    int32_t n_vars, cap_vars;
    /* training graph, built on first use */
    plx_graph *train_graph;
    exec_plan *train_plan;
    optimizer_graph opt_graph;
    int32_t tx, ty, ty2, tlam, tloss, tlogits, ttarget;
    plx_tensor *tx_t, *ty_t, *ty2_t, *tlam_t, *ttarget_t;
    int32_t *dropout_nodes;
    int32_t n_dropout_nodes;
    /* inference plans for up to two batch sizes (full and remainder) */
    infer_plan infer[2];
    /* progress of training, saved in checkpoints */
    int64_t global_step;
    int32_t epochs_done;
    data_position position;
    bool has_position;
    int64_t *confusion;
    int64_t confusion_classes;
    /* input normalization the model was trained with (0 channels: none) */
    int32_t norm_n;
    float norm_mean[16], norm_std[16];
};

/* Parses the model file into m->spec (validating everything). */
plx_status model_spec_parse(plx_model *m);
void model_spec_free(model_spec *s);

/* The variable named `name`, or NULL. */
model_var *model_var_find(plx_model *m, const char *name);
/* Builds the model's layers into g from value x (training selects the
 * graph); creates and initializes variables on first sight. */
plx_status model_build_layers(plx_model *m, plx_graph *g, int32_t training, int32_t x, int32_t *logits);
/* Creates (and initializes) a variable for every persistent value of g
 * the model does not have yet. */
plx_status model_ensure_vars(plx_model *m, plx_graph *g);
/* Binds every persistent value of g except those in skip[] to the model's
 * variables. */
plx_status model_bind_vars(plx_model *m, plx_graph *g, exec_plan *p);
/* The inference plan for a batch of n (built and cached). */
plx_status model_infer_plan(plx_model *m, int64_t n, infer_plan **out);
/* The training graph and plan (built once). */
plx_status model_train_plan(plx_model *m);

/* As plx_model_parse, without applying training.init_from (the checkpoint
 * being restored provides every weight). */
plx_status model_parse_for_checkpoint(plx_context *ctx, const char *json_text, const char *origin, plx_model **out);

/* train.c: pieces of the training loop that model_bench.c reuses. */
typedef struct model_data {
    dataset *train, *val, *test;
} model_data;
void model_data_free(model_data *d);
/* The model's data (dir_override replaces data.dir), normalized as the
 * model file says; with need_train the training set, split for validation;
 * limits > 0 keep the first N training / test examples. */
plx_status model_load_data(plx_model *m, const char *dir_override, bool need_train, int64_t limit_train,
                           int64_t limit_test, model_data *d);
/* Learning rate, step count and dropout counters of the next training step. */
void model_set_step_attrs(plx_model *m, float lr);
/* Copies a full batch (features, labels, mixing, one-hot targets) into the
 * training plan's input tensors. */
void model_set_batch(plx_model *m, const data_batch *batch);

/* checkpoint.c */
plx_status checkpoint_write(plx_model *m, const char *path);
plx_status checkpoint_restore(plx_model *m, const char *path);

#endif
