package org.peft4j.core.internal;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Predicate;
import org.peft4j.core.TargetModules;
import org.peft4j.core.spi.ConfigJson;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What Hugging Face PEFT does with {@code modules_to_save} when it loads a file, where peft4j's
 * builders are stricter with what a user writes:
 * <ul>
 *   <li>repeated entries are dropped: for sequence classification PEFT appends
 *       {@code ["classifier", "score"]} to the user's list, so real files carry
 *       {@code ["classifier", "classifier", "score"]};</li>
 *   <li>entries that match no module are skipped (BERT has no {@code score});</li>
 *   <li>with {@code task_type} {@code "SEQ_CLS"}, a head module named {@code classifier} or
 *       {@code score} (or a module inside one, as RoBERTa's {@code classifier.dense}) whose tensors
 *       the file holds is a module to save even when the list does not say so: PEFT adds both names
 *       itself, and before 0.11 did not write them into the file.</li>
 * </ul>
 * Everything is in the file's own terms: module names are the graph's layer names, or, with a
 * name map, the module paths a file may use.
 *
 * <p>Thread-safety: stateless.
 */
final class PeftFileSemantics {

    private static final Logger LOG = LoggerFactory.getLogger(PeftFileSemantics.class);
    private static final List<String> HEADS = List.of("classifier", "score");

    private PeftFileSemantics() {
    }

    /**
     * {@code json} with {@code modules_to_save} as PEFT reads it.
     *
     * @param tensorNames the names of the file's tensors
     * @param modules the module names the file can refer to
     * @param isModule whether a name (a tensor's name without {@code base_model.model.} and its last
     *     part) is a module of the graph that holds parameters
     */
    static Map<String, Object> normalize(Map<String, Object> json, Collection<String> tensorNames,
                                         Collection<String> modules, Predicate<String> isModule) {
        String[] listed = ConfigJson.optionalStrings(json, "modules_to_save");
        Set<String> entries = new LinkedHashSet<>(listed == null ? List.of() : List.of(listed));
        if ("SEQ_CLS".equals(json.get("task_type"))) {
            for (String t : tensorNames) {
                String rest = t.startsWith(AdapterLayout.PREFIX) ? t.substring(AdapterLayout.PREFIX.length()) : t;
                int dot = rest.lastIndexOf('.');
                if (dot <= 0) {
                    continue;
                }
                String module = rest.substring(0, dot);
                List<String> parts = List.of(module.split("\\."));
                for (String head : HEADS) {
                    if (parts.contains(head) && isModule.test(module) && entries.add(head)) {
                        LOG.info("task_type SEQ_CLS: the adapter file holds the head {}'s tensors, so \"{}\" is a module "
                                + "to save (as PEFT loads it)", module, head);
                    }
                }
            }
        }
        if (entries.isEmpty()) {
            return json;
        }
        List<String> kept = new ArrayList<>();
        Set<String> skipped = new TreeSet<>();
        for (String e : entries) {
            if (modules.stream().anyMatch(m -> TargetModules.matchesModuleToSave(List.of(e), m))) {
                kept.add(e);
            } else {
                skipped.add(e);
            }
        }
        if (!skipped.isEmpty()) {
            LOG.info("modules_to_save entries {} match no module and are skipped, as PEFT skips them", skipped);
        }
        Map<String, Object> out = new TreeMap<>(json);
        out.put("modules_to_save", kept.isEmpty() ? null : kept);
        return out;
    }
}
