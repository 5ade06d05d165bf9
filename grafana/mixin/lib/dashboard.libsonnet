// Plain-jsonnet Grafana helpers: panels, variables, layout and the dashboard envelope.
// (grafonnet is not vendored: no Debian, npm or PyPI package ships it and its git repository
// cannot be fetched by this project's CI; these few helpers produce the same JSON model.)
local DS = { type: 'prometheus', uid: '${datasource}' };
local SCHEMA_VERSION = 39;  // Grafana 10.4 / 11.x; newer Grafana migrates it on load

{
  DS: DS,

  target(expr, legend='', ref='A', instant=false, table=false)::
    { datasource: DS, editorMode: 'code', expr: expr, refId: ref }
    + (if table then { format: 'table', instant: true, range: false, legendFormat: '__auto' }
       else if instant then { instant: true, range: false, legendFormat: if legend != '' then legend else '__auto' }
       else { range: true, legendFormat: if legend != '' then legend else '__auto' }),

  // thresholds([['green', null], ['red', 0.9]])
  thresholds(steps):: { mode: 'absolute', steps: [{ color: s[0], value: s[1] } for s in steps] },
  GREEN:: self.thresholds([['green', null]]),

  link(title, tooltip, url, icon='doc'):: {
    asDropdown: false,
    icon: icon,
    includeVars: false,
    keepTime: false,
    tags: [],
    targetBlank: true,
    title: title,
    tooltip: tooltip,
    type: 'link',
    url: url,
  },
  runbook(cfg, name):: self.link('Runbook: ' + name, 'grafana/runbooks/%s.md' % name, cfg.runbookUrlPrefix + name + '.md'),
  doc(cfg, title, path):: self.link(title, path, cfg.repositoryUrl + path),
  dashLink(title, uid, tooltip):: self.link(title, tooltip, '/d/' + uid, 'dashboard') + {
    includeVars: true,
    keepTime: true,
    targetBlank: false,
  },

  local base(kind, title, description, unit, targets, links, w, h, thr, minv, maxv, overrides) = {
    type: kind,
    title: title,
    description: description,
    datasource: DS,
    fieldConfig: {
      defaults: {
                  unit: unit,
                  color: { mode: 'palette-classic' },
                  thresholds: if thr != null then thr else $.GREEN,
                }
                + (if minv != null then { min: minv } else {})
                + (if maxv != null then { max: maxv } else {}),
      overrides: overrides,
    },
    targets: targets,
    links: links,
    _size:: [w, h],
  },

  timeseries(title,
             description,
             unit,
             targets,
             links,
             w=12,
             h=8,
             stack=false,
             thr=null,
             minv=0,
             maxv=null,
             overrides=[],
             legendRight=false)::
    base('timeseries', title, description, unit, targets, links, w, h, thr, minv, maxv, overrides) + {
      fieldConfig+: { defaults+: { custom: {
        drawStyle: 'line',
        lineWidth: 1,
        fillOpacity: if stack then 20 else 5,
        showPoints: 'never',
        spanNulls: false,
        stacking: { mode: if stack then 'normal' else 'none', group: 'A' },
        thresholdsStyle: { mode: if thr != null then 'line+area' else 'off' },
      } } },
      options: {
        legend: {
          showLegend: true,
          displayMode: 'table',
          placement: if legendRight then 'right' else 'bottom',
          calcs: ['lastNotNull', 'max'],
        },
        tooltip: { mode: 'multi', sort: 'desc' },
      },
    },

  stat(title, description, unit, targets, links, w=4, h=4, thr=null, overrides=[], decimals=null)::
    base('stat', title, description, unit, targets, links, w, h, thr, null, null, overrides) + {
      fieldConfig+: { defaults+: { color: { mode: 'thresholds' } } + (if decimals != null then { decimals: decimals } else {}) },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        colorMode: 'value',
        graphMode: 'area',
        justifyMode: 'auto',
        orientation: 'auto',
        textMode: 'auto',
        wideLayout: true,
        showPercentChange: false,
      },
    },

  bargauge(title, description, unit, targets, links, w=12, h=8, thr=null, minv=0, maxv=null)::
    base('bargauge', title, description, unit, targets, links, w, h, thr, minv, maxv, []) + {
      fieldConfig+: { defaults+: { color: { mode: 'thresholds' } } },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        displayMode: 'gradient',
        orientation: 'horizontal',
        showUnfilled: true,
        valueMode: 'color',
        namePlacement: 'auto',
        sizing: 'auto',
        minVizHeight: 16,
        minVizWidth: 8,
        maxVizHeight: 300,
      },
    },

  // A table of instant queries merged on their labels; `rename` maps "Value #A" etc. to
  // column names, `exclude` hides label columns.
  table(title, description, unit, targets, links, rename, w=12, h=8, overrides=[], thr=null, sortBy=null, exclude=[])::
    base('table', title, description, unit, targets, links, w, h, thr, null, null, overrides) + {
      fieldConfig+: { defaults+: { custom: { align: 'auto', cellOptions: { type: 'auto' } } } },
      options: {
        showHeader: true,
        cellHeight: 'sm',
        footer: { show: false, reducer: ['sum'], countRows: false, fields: '' },
      } + (if sortBy != null then { sortBy: [{ displayName: sortBy, desc: true }] } else {}),
      transformations: [
        { id: 'merge', options: {} },
        { id: 'organize', options: {
          excludeByName: { Time: true } + { [c]: true for c in exclude },
          renameByName: rename,
        } },
      ],
    },

  unitOverride(ref, unit):: { matcher: { id: 'byFrameRefID', options: ref }, properties: [{ id: 'unit', value: unit }] },
  columnUnit(column, unit):: { matcher: { id: 'byName', options: column }, properties: [{ id: 'unit', value: unit }] },

  row(title):: { type: 'row', title: title, collapsed: false, panels: [], _size:: [24, 1] },

  // Ids and gridPos: rows take a full line, panels flow left to right.
  layout(items)::
    local step(st, it) =
      if it.type == 'row' then
        local y = st.y + (if st.x > 0 then st.lineH else 0);
        st { x: 0, y: y + 1, lineH: 0, id: st.id + 1, out+: [it { gridPos: { h: 1, w: 24, x: 0, y: y }, id: st.id }] }
      else
        local w = it._size[0], h = it._size[1];
        local wrap = st.x + w > 24;
        local x = if wrap then 0 else st.x;
        local y = if wrap then st.y + st.lineH else st.y;
        local lineH = if wrap then 0 else st.lineH;
        st {
          x: x + w,
          y: y,
          lineH: std.max(lineH, h),
          id: st.id + 1,
          out+: [it { gridPos: { h: h, w: w, x: x, y: y }, id: st.id }],
        };
    std.foldl(step, items, { x: 0, y: 0, lineH: 0, id: 1, out: [] }).out,

  // ---- Variables -----------------------------------------------------------------------------
  dsVar():: {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    hide: 0,
    includeAll: false,
    multi: false,
    options: [],
    refresh: 1,
    regex: '',
    skipUrlSync: false,
    description: 'Prometheus that scrapes sockdiag_exporter.',
  },

  queryVar(name, label, query, allValue, description, hide=0):: {
    name: name,
    label: label,
    type: 'query',
    datasource: DS,
    query: { query: query, refId: 'var-' + name, qryType: 1 },
    current: { selected: true, text: ['All'], value: ['$__all'] },
    hide: hide,
    includeAll: true,
    multi: true,
    allValue: allValue,
    options: [],
    refresh: 2,
    regex: '',
    skipUrlSync: false,
    sort: 1,
    description: description,
  },

  dashboard(cfg, uid, title, description, panels, variables, links):: {
    annotations: { list: [{
      builtIn: 1,
      datasource: { type: 'grafana', uid: '-- Grafana --' },
      enable: true,
      hide: true,
      iconColor: 'rgba(0, 211, 255, 1)',
      name: 'Annotations & Alerts',
      type: 'dashboard',
    }] },
    description: description,
    editable: false,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    links: links,
    liveNow: false,
    panels: $.layout(panels),
    refresh: cfg.dashboardRefresh,
    schemaVersion: SCHEMA_VERSION,
    tags: cfg.dashboardTags,
    templating: { list: variables },
    time: { from: cfg.dashboardTimeFrom, to: 'now' },
    timepicker: {},
    timezone: cfg.dashboardTimezone,
    title: cfg.dashboardTitlePrefix + title,
    uid: uid,
    version: 1,
    weekStart: '',
  },
}
