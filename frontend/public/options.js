// What the server lets a user choose, turned into one rule per form property: option lists from
// GET /api/options, defaults and numeric bounds from its run_config_schema (RunConfig's JSON schema, $refs
// resolved here), the configurable limits from its `limits`, and the training-set size from GET /api/datasets.
// Nothing about the run config is known in JS but what state.js declares (names and types).

import { api } from './api.js';
import { fmtInt } from './util.js';

/** Everything the page needs before the form can be shown, fetched at once. */
export async function loadSetup() {
  const [options, presets, datasets, health] = await Promise.all([
    api.options(),
    api.presets(),
    api.datasets(),
    api.health(),
  ]);
  return { options, presets, datasets, health };
}

// Which configured limit caps which property, on top of the schema's static bound.
const LIMIT_OF = {
  epochs: 'max_epochs',
  batch_size: 'max_batch_size',
  'dense.units': 'max_units',
  'conv2d.filters': 'max_filters',
};

function deref(schema, node) {
  let n = node;
  for (let hops = 0; n && n.$ref && hops < 20; hops++) {
    const path = n.$ref.replace(/^#\//, '').split('/');
    n = path.reduce((at, part) => at?.[part], schema);
  }
  return n || {};
}

/** The schema node at a property path (['optimizer', 'momentum']) below `root`. */
function nodeAt(schema, root, path) {
  let node = root;
  for (const part of path) node = deref(schema, deref(schema, node).properties?.[part]);
  return node;
}

/** {type, default, min, max, minOpen, maxOpen, optional, maxLength, choices, description} of a schema node. */
function ruleOf(schema, node, declared) {
  const outer = deref(schema, node);
  const branches = (outer.anyOf || []).map((b) => deref(schema, b));
  const inner = branches.find((b) => b.type && b.type !== 'null') || outer;
  const rule = {
    type: declared.type,
    default: outer.default,
    optional: branches.some((b) => b.type === 'null'),
    description: outer.description || inner.description || '',
    maxLength: inner.maxLength,
    choices: inner.enum || (inner.const !== undefined ? [inner.const] : undefined),
  };
  if ('minimum' in inner) rule.min = inner.minimum;
  if ('exclusiveMinimum' in inner) [rule.min, rule.minOpen] = [inner.exclusiveMinimum, true];
  if ('maximum' in inner) rule.max = inner.maximum;
  if ('exclusiveMaximum' in inner) [rule.max, rule.maxOpen] = [inner.exclusiveMaximum, true];
  return rule;
}

function capped(rule, limit) {
  if (limit === undefined || (rule.max !== undefined && rule.max < limit)) return rule;
  return { ...rule, max: limit, maxOpen: false };
}

/** The schema definition of one layer type: the branch of `layers.items.oneOf` whose `type` allows it. */
function layerDef(schema, type) {
  const items = deref(schema, nodeAt(schema, schema, ['layers']).items);
  for (const branch of items.oneOf || items.anyOf || [items]) {
    const def = deref(schema, branch);
    const t = deref(schema, def.properties?.type);
    if (t.const === type || (t.enum || []).includes(type)) return def;
  }
  return null;
}

/**
 * One rule per property of state.js's declarations, and `dataset`: the data set's description. `props` and
 * `layerProps` name the properties and their types; everything else comes from the server.
 */
export function buildRules({ options, datasets }, { props, layerProps }) {
  const schema = options.run_config_schema;
  const limits = options.limits;
  // the data set a config gets when it names none (the page offers no other yet)
  const datasetName = nodeAt(schema, schema, ['dataset']).default;
  const dataset = datasets.find((d) => d.name === datasetName) || datasets[0];
  const lists = { ...options, datasets: datasets.filter((d) => !d.options?.length).map((d) => d.name) }; // 2-D sets: playground.js
  const finish = (rule, declared, limitKey) => {
    let r = capped(rule, limits[LIMIT_OF[limitKey]]);
    if (declared.options) r = { ...r, choices: lists[declared.options] || r.choices || [] };
    return r;
  };
  const rules = { props: {}, layers: {}, layerTypes: options.layer_types, maxLayers: limits.max_layers, dataset };
  for (const p of props) {
    rules.props[p.key] = finish(ruleOf(schema, nodeAt(schema, schema, p.path), p), p, p.key);
  }
  // the data set's own size bounds how many of its images a run can take
  if (rules.props.train_subset && Number.isInteger(dataset?.train_size)) {
    rules.props.train_subset = { ...rules.props.train_subset, max: dataset.train_size };
  }
  for (const type of options.layer_types) {
    const def = layerDef(schema, type);
    const declared = layerProps[type] || fieldsFromSchema(def);
    rules.layers[type] = {};
    for (const f of declared) {
      rules.layers[type][f.key] = finish(ruleOf(schema, def?.properties?.[f.key] || {}, f), f, `${type}.${f.key}`);
    }
  }
  return rules;
}

/** For a layer type the page does not know yet: its fields, in the schema's order, typed from the schema. */
function fieldsFromSchema(def) {
  return Object.entries(def?.properties || {})
    .filter(([key]) => key !== 'type')
    .map(([key, node]) => ({ key, type: node.enum ? 'enum' : node.type === 'integer' ? 'int' : node.type === 'number' ? 'number' : 'string' }));
}

/** '' when a value obeys its rule, else what is wrong, in words. */
export function checkValue(value, rule) {
  if (rule.type === 'enum') return (rule.choices || []).includes(value) ? '' : 'choose one';
  if (rule.type === 'string') {
    return rule.maxLength !== undefined && value.length > rule.maxLength ? `at most ${rule.maxLength} characters` : '';
  }
  if (value === null || value === undefined) return rule.optional ? '' : 'required';
  if (!Number.isFinite(value)) return 'not a number';
  if (rule.type === 'int' && !Number.isInteger(value)) return 'must be a whole number';
  if (rule.min !== undefined && (rule.minOpen ? value <= rule.min : value < rule.min)) {
    return rule.minOpen ? `must be more than ${rule.min}` : `must be at least ${rule.min}`;
  }
  if (rule.max !== undefined && (rule.maxOpen ? value >= rule.max : value > rule.max)) {
    return rule.maxOpen ? `must be less than ${rule.max}` : `at most ${fmtInt(rule.max)}`;
  }
  return '';
}

/** min / max / step attributes for a number input, so the browser's spinner agrees with the rule. */
export function inputAttributes(rule) {
  const attrs = {};
  if (rule.min !== undefined) attrs.min = String(rule.min);
  if (rule.max !== undefined) attrs.max = String(rule.max);
  attrs.step = rule.type === 'int' ? '1' : 'any';
  attrs.inputmode = rule.type === 'int' ? 'numeric' : 'decimal';
  return attrs;
}
